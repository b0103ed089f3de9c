# webrtc-rtp-gateway: multi-stage build, Node 24 slim + Debian's ffmpeg (and a font for a
# composite's name tiles), non-root.
# Build: docker build -t webrtc-rtp-gateway .
# Run:   docker run --rm -p 8080:8080 -p 40000-40099:40000-40099/udp \
#          -e PUBLIC_ADDRESSES=<the host's public IP> -e AUTH_TOKENS='[{"token":"...","permissions":[...]}]' \
#          -v gateway-data:/app/data webrtc-rtp-gateway
# It listens on 0.0.0.0 in the container, so it needs credentials (AUTH_TOKENS, AUTH_JWKS_URL...) or AUTH_MODE=none.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg curl fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json config.example.yaml ./
COPY pipelines ./pipelines
COPY sdp-templates ./sdp-templates
COPY web ./web
RUN mkdir -p /app/data && chown -R node:node /app/data
USER node
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/app/data \
    ICE_PORT_RANGE=40000-40099
EXPOSE 8080
EXPOSE 40000-40099/udp
VOLUME ["/app/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["node", "dist/cli.js"]
