-- Users of the docker-compose deployment (development passwords: change them).
-- The ingestor (user audit, from the image's CLICKHOUSE_USER) owns the schema.
CREATE USER IF NOT EXISTS audit_query IDENTIFIED BY 'query-dev-only' SETTINGS readonly = 2;
GRANT SELECT ON audit.events TO audit_query;
-- The integrity API reads the transparency log's tables and finds an
-- event's log index by its id (log_index in reads too).
GRANT SELECT ON audit.events_by_id TO audit_query;
GRANT SELECT ON audit.tlog_runs TO audit_query;
GRANT SELECT ON audit.tlog_leaves_by_event TO audit_query;
GRANT SELECT ON audit.tlog_checkpoints TO audit_query;
GRANT SELECT ON audit.tlog_subject_salts TO audit_query;
-- The cluster's Distributed tables read their shards' local tables.
GRANT SELECT ON audit.events_local TO audit_query;
GRANT SELECT ON audit.events_by_id_local TO audit_query;
GRANT SELECT ON audit.tlog_runs_local TO audit_query;
GRANT SELECT ON audit.tlog_leaves_by_event_local TO audit_query;
GRANT SELECT ON audit.tlog_checkpoints_local TO audit_query;
GRANT SELECT ON audit.tlog_subject_salts_local TO audit_query;
CREATE USER IF NOT EXISTS audit_retention IDENTIFIED BY 'retention-dev-only';
GRANT ALTER UPDATE ON audit.events TO audit_retention;
