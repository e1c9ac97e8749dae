# Builds the orderflow binary into a small image. The same image runs every
# process: `orderflow api`, `worker`, `sim` or `dev`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/orderflow/orderflow/cli.Version=${VERSION}" \
    -o /out/orderflow ./cmd/orderflow

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/orderflow /usr/local/bin/orderflow
USER nonroot
ENTRYPOINT ["/usr/local/bin/orderflow"]
CMD ["dev", "--listen", "0.0.0.0:8080", "--insecure-listen"]
