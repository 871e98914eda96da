-- Users of the docker-compose deployment (development passwords: change them).
-- The ingestor (user audit, from the image's CLICKHOUSE_USER) owns the schema.
CREATE USER IF NOT EXISTS audit_query IDENTIFIED BY 'query-dev-only' SETTINGS readonly = 2;
GRANT SELECT ON audit.events TO audit_query;
-- The integrity API reads the transparency log's tables (log_index in reads too).
GRANT SELECT ON audit.tlog_nodes TO audit_query;
GRANT SELECT ON audit.tlog_checkpoints TO audit_query;
GRANT SELECT ON audit.tlog_subject_salts TO audit_query;
CREATE USER IF NOT EXISTS audit_retention IDENTIFIED BY 'retention-dev-only';
GRANT ALTER UPDATE ON audit.events TO audit_retention;
