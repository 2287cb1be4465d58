# One image for every haul service (and the emulated hosts): Node.js 20 plus the repository, its programs bundled
# (scripts/build.mjs) so that nothing compiles TypeScript at run time.
FROM node:20-bookworm-slim
WORKDIR /opt/haul
COPY . .
RUN npm ci --no-audit --no-fund && node scripts/build.mjs && npm prune --omit=dev --no-audit --no-fund
ENV PATH=/opt/haul/host-emulators/bin:/opt/haul/bin:$PATH
ENTRYPOINT []
