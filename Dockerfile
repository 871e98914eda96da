# Builds one Takumo Audit service: docker build --build-arg SERVICE=ingestor .
FROM golang:1.26 AS build
ARG SERVICE=ingestor
WORKDIR /src
COPY . .
RUN cd ${SERVICE} && CGO_ENABLED=0 go build -o /out/service ./cmd/${SERVICE}

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/service /service
USER nonroot
ENTRYPOINT ["/service"]
