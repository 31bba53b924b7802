/* kill_session--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION kill_session UPDATE TO '1.2'" to load this file. \quit

-- The directory of a cluster's nodes: each node by its kill_session.node_id,
-- and the foreign server that reaches it.  Calls for another node's session
-- connect with that server's options and the caller's user mapping.
-- Defined on the primary; standbys see it through replication.
CREATE TABLE kill_session_nodes (
    node_id integer PRIMARY KEY CHECK (node_id BETWEEN 1 AND 9999),
    server_name text NOT NULL
);

COMMENT ON TABLE kill_session_nodes IS
'The nodes of the cluster: node ID and the foreign server that reaches it';

SELECT pg_catalog.pg_extension_config_dump('kill_session_nodes', '');

GRANT SELECT ON kill_session_nodes TO PUBLIC;

-- The list of every node's sessions, like OceanBase's GV$OB_PROCESSLIST.
CREATE FUNCTION kill_session_cluster_processlist(
    OUT node integer,
    OUT id bigint,
    OUT "user" text,
    OUT host text,
    OUT db text,
    OUT command text,
    OUT "time" integer,
    OUT state text,
    OUT info text,
    OUT pid integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kill_session_cluster_processlist'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW cluster_processlist AS
    SELECT node, id, "user", host, db, command, "time", state, info, pid
    FROM kill_session_cluster_processlist();

COMMENT ON VIEW cluster_processlist IS
'Client sessions of every node of the cluster, each node''s as its processlist shows them to the caller';

GRANT SELECT ON cluster_processlist TO PUBLIC;
