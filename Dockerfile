# netnsd image: build stage compiles TypeScript, better-sqlite3 and the native helper;
# the runtime stage has only Node, iproute2 and nftables.
#
# Run it in the host's network and mount namespaces' view of /run/netns, with the privileges
# `ip netns` needs:
#   docker run -d --name netnsd --network host --pid host --privileged \
#     -v /run/netns:/run/netns:shared -v /run/netnsd:/run/netnsd -v netnsd-data:/var/lib/netnsd netnsd
FROM node:20-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY native ./native
COPY scripts ./scripts
COPY src ./src
RUN npm run build:native && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 nftables iputils-ping \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/netnsd
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native/build/Release/netns.node ./native/build/Release/netns.node
VOLUME ["/var/lib/netnsd"]
ENV NODE_ENV=production
ENTRYPOINT ["node", "--single-threaded-gc", "/opt/netnsd/dist/main.js"]
