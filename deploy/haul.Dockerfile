# haul's container images, two targets built from one build stage (Node.js 20, the programs bundled by
# scripts/build.mjs so that nothing compiles TypeScript at run time):
#
#   --target emulated   the emulated cluster of compose.yaml, the tests and the demo: the vzctl, criu and ploop
#                       emulators (host-emulators/) come first on PATH. Never run it on a real host: the emulators
#                       would hide the real tools.
#   --target host       for real hosts: haul's services and CLI, no emulators anywhere in the image. The node agent
#                       finds the host's real vzctl, criu and ploop (docs/install.md says how to run it; a systemd
#                       install from /opt/haul is the usual way, and this image's /opt/haul is that tree).

FROM node:20-bookworm-slim AS build
WORKDIR /opt/haul
COPY . .
RUN npm ci --no-audit --no-fund && node scripts/build.mjs && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS host
WORKDIR /opt/haul
COPY --from=build /opt/haul /opt/haul
# No emulator may reach a real host: drop them and their workspace link.
RUN rm -rf /opt/haul/host-emulators /opt/haul/node_modules/@haul/host-emulators
ENV PATH=/opt/haul/bin:$PATH
ENTRYPOINT []

FROM node:20-bookworm-slim AS emulated
# openssl: `haul init-cluster` makes the emulated cluster's CA and certificates with it (compose.yaml's setup).
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/haul
COPY --from=build /opt/haul /opt/haul
ENV PATH=/opt/haul/host-emulators/bin:/opt/haul/bin:$PATH
ENTRYPOINT []
