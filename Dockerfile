# The smartcopy image: the worker (entrypoint; -migrate applies the schema and
# exits) and the starter CLI as /smartcopy. Static binaries on distroless, run
# as a non-root user.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so code changes do not refetch them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/smartcopy-worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -o /out/smartcopy ./starter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smartcopy-worker /out/smartcopy /
USER nonroot:nonroot
EXPOSE 9090
ENTRYPOINT ["/smartcopy-worker"]
