# One image for every haul service (and the emulated hosts): Node.js 20 plus the repository.
FROM node:20-bookworm-slim
WORKDIR /opt/haul
COPY . .
RUN npm ci --omit=dev --no-audit --no-fund
ENV PATH=/opt/haul/host-emulators/bin:/opt/haul/bin:$PATH
ENTRYPOINT []
