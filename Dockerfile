# Builds one Takumo Audit service: docker build --build-arg SERVICE=ingestor .
# SERVICE=auditd builds the single binary (compose uses it for `auditd topology`).
FROM golang:1.26 AS build
ARG SERVICE=ingestor
WORKDIR /src
COPY . .
RUN cd ${SERVICE} && pkg=./cmd/${SERVICE} && { [ -d "$pkg" ] || pkg=.; } && CGO_ENABLED=0 go build -o /out/service "$pkg"

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/service /service
USER nonroot
ENTRYPOINT ["/service"]
