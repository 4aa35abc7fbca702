# patchd's service image: `patchd serve --config /etc/patchd/patchd.yaml`.
# The in-process executor needs no privileges and no container runtime; BuildKit,
# when configured, is a separate daemon. xz-utils is there for speed only: a
# package's data.tar.xz goes through `xz` when it is installed (about three times
# the speed of the WebAssembly decoder patchd falls back to).
#
#   docker buildx build -t patchd .
#
# Behind a TLS-intercepting proxy, give npm the proxy's CA as the optional
# secret `npm_ca` (a PEM bundle; added to Node's CAs, not replacing them):
#   docker buildx build --secret id=npm_ca,src=/etc/ssl/certs/ca-certificates.crt -t patchd .
# Build args: NODE_IMAGE (a mirror of the same image), NPM_REGISTRY (an npm
# mirror), VERSION and SOURCE_URL (OCI labels).
#
# No `# syntax=` line: BuildKit's built-in Dockerfile frontend has everything
# used here, and a syntax image would be one more pull from Docker Hub.

ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
ARG NPM_REGISTRY
ENV npm_config_update_notifier=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before src/ is here (it is
# compiled below), and no dependency needs its install script: no native
# addons (SQLite is node:sqlite); protobufjs's only prints version advice.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm_ca,required=false \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn ${NPM_REGISTRY:+--registry=$NPM_REGISTRY}
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
# Then only what runs: prune leaves the scope directories of the packages it
# removed (@esbuild/, ...) behind, empty.
RUN npx --no-install tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=warn \
 && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE_URL=
LABEL org.opencontainers.image.title="patchd" \
      org.opencontainers.image.description="Patches container images on push: finds outdated packages, builds a patch layer without rebuilding, pushes <tag>-patched." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}"
# A named user for tools that look one up (os.userInfo, npm); the image runs
# as the numeric id so Kubernetes' runAsNonRoot can check it. The data
# directory (SQLite queue, apt cache) is the one place it writes besides /tmp.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xz-utils \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 patchd \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /home/patchd --create-home --shell /usr/sbin/nologin patchd \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/patchd \
 && install -d -m 0755 /etc/patchd
WORKDIR /app
# Owned by root: the service cannot change its own code.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
ENV NODE_ENV=production HOME=/home/patchd
USER 10001:10001
EXPOSE 8080 8443
ENTRYPOINT ["node", "/app/bin/patchd.js"]
CMD ["serve", "--config", "/etc/patchd/patchd.yaml"]
