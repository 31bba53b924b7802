/*-------------------------------------------------------------------------
 *
 * vsession.c
 *		v$session: the sessions as Oracle's V$SESSION shows them, with who
 *		blocks whom in session IDs.
 *
 * A DBA decides what to kill from the lock graph: which session waits for
 * which, and which one heads the chain.  PostgreSQL answers that one
 * session at a time, in PIDs (pg_blocking_pids()).  Here the whole graph
 * is read once (lockgraph.c), so that the rows agree with each other, and
 * each session gets its blockers as session IDs and the head of its chain
 * (FINAL_BLOCKING_SESSION).  What a caller may see of a session follows
 * pg_stat_activity, as the process list does; the blockers, as in
 * pg_locks, everyone may see.
 *
 * gv$session adds every node of the cluster, each answering for its own
 * sessions and its own lock graph (locks are not shared between nodes).
 *
 * This file owns v$session.  No file of the project calls it; it reads
 * other nodes only through forward.c's ks_cluster_list().
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  vsession.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "kill_session.h"
#include "lockgraph.h"
#include "registry.h"

PG_FUNCTION_INFO_V1(kill_session_vsession);
PG_FUNCTION_INFO_V1(kill_session_cluster_vsession);

#define KS_VSESSION_COLS	20

/* "address:port" or "localhost", as the registry keeps it, split. */
static void
ks_split_host(const char *host, Datum *machine, bool *machine_null,
			  Datum *port, bool *port_null)
{
	const char *colon = strrchr(host, ':');

	if (host[0] == '\0')
	{
		*machine_null = true;
		*port_null = true;
		return;
	}
	if (colon == NULL)
	{
		*machine = CStringGetTextDatum(host);
		*port_null = true;
		return;
	}
	*machine = PointerGetDatum(cstring_to_text_with_len(host, colon - host));
	*port = Int32GetDatum(atoi(colon + 1));
}

static Datum
ks_timestamp_or_null(TimestampTz ts, bool *isnull)
{
	if (ts == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return TimestampTzGetDatum(ts);
}

/* Put one session's row, after this node's number if with_node. */
static void
ks_put_vsession_row(ReturnSetInfo *rsinfo, bool with_node,
					const KsLockGraph *graph, const KsSession *session,
					const KsActivity *be, bool read_all_stats, TimestampTz now)
{
	Datum		all_values[KS_VSESSION_COLS + 1] = {0};
	bool		all_nulls[KS_VSESSION_COLS + 1] = {0};
	Datum	   *values = with_node ? &all_values[1] : all_values;
	bool	   *nulls = with_node ? &all_nulls[1] : all_nulls;
	BackendState state = be ? be->state : STATE_UNDEFINED;
	Oid			role = be ? be->userid :
		get_role_oid(NameStr(session->user_name), true);
	bool		visible = read_all_stats ||
		(OidIsValid(role) && has_privs_of_role(GetUserId(), role));
	bool		active = state == STATE_RUNNING || state == STATE_FASTPATH;
	const KsGraphNode *node;
	const KsBlock *blocks;
	int			nblocks;
	const char *user;
	Datum	   *ids;
	int			nids = 0;
	int			i;

	values[0] = Int64GetDatum(ks_global_id(session->sid));	/* sid */
	values[1] = Int32GetDatum(session->pid);	/* serial# */
	user = be != NULL ? GetUserNameFromId(role, true) :
		NameStr(session->user_name);
	if (user != NULL)
		values[2] = CStringGetTextDatum(user);	/* username */
	else
		nulls[2] = true;
	if (visible && state != STATE_DISABLED)
	{
		uint32		wait_event_info;
		const char *event;

		/* status */
		values[3] = CStringGetTextDatum(session->killed ? "KILLED" :
										active ? "ACTIVE" : "INACTIVE");
		ks_split_host(session->host, &values[4], &nulls[4],
					  &values[5], &nulls[5]);	/* machine, port */
		if (active && be->query_id != 0)
			values[7] = Int64GetDatum(be->query_id);	/* sql_id */
		else
			nulls[7] = true;
		if (active)				/* sql_exec_start */
			values[8] = ks_timestamp_or_null(be->stmt_start,
											 &nulls[8]);
		else
			nulls[8] = true;
		if (!active && be != NULL && be->query_id != 0)
			values[9] = Int64GetDatum(be->query_id);	/* prev_sql_id */
		else
			nulls[9] = true;
		values[10] = ks_timestamp_or_null(be ? be->proc_start :
										  session->connect_time, &nulls[10]);	/* logon_time */
		if (be != NULL && be->state_start != 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(be->state_start, now, &secs, &usecs);
			values[11] = Int32GetDatum((int32) Min(secs, PG_INT32_MAX));	/* last_call_et */
		}
		else
			nulls[11] = true;

		/* event, wait_class, state: what the process waits for now */
		wait_event_info = ks_lock_graph_wait_event(graph, session->pid);
		event = wait_event_info != 0 ? pgstat_get_wait_event(wait_event_info) : NULL;
		if (event != NULL)
		{
			values[17] = CStringGetTextDatum(event);
			values[18] = CStringGetTextDatum(pgstat_get_wait_event_type(wait_event_info));
			values[19] = CStringGetTextDatum("WAITING");
		}
		else
		{
			nulls[17] = true;
			nulls[18] = true;
			values[19] = CStringGetTextDatum("WAITED UNKNOWN TIME");
		}
	}
	else
	{
		nulls[3] = nulls[4] = nulls[5] = true;
		for (i = 7; i <= 11; i++)
			nulls[i] = true;
		nulls[17] = nulls[18] = nulls[19] = true;
	}
	/* program: application_name, which pg_stat_activity shows to all */
	if (be != NULL && be->appname[0] != '\0')
		values[6] = CStringGetTextDatum(be->appname);
	else
		nulls[6] = true;

	/* the blockers, and the head of the chain */
	node = ks_lock_graph_node(graph, session->pid);
	nblocks = node != NULL ? node->nblocks : 0;
	blocks = node != NULL ? &graph->blocks[node->first_block] : NULL;
	ids = palloc(sizeof(Datum) * Max(nblocks, 1));
	for (i = 0; i < nblocks; i++)
		if (blocks[i].blocker_id != 0)
			ids[nids++] = Int64GetDatum(blocks[i].blocker_id);
	if (node == NULL || !node->waiting)
	{
		values[12] = CStringGetTextDatum("NOT IN WAIT");
		values[15] = CStringGetTextDatum("NOT IN WAIT");
		nulls[13] = nulls[14] = nulls[16] = true;
	}
	else
	{
		values[12] = CStringGetTextDatum(nids > 0 ? "VALID" :
										 nblocks > 0 ? "UNKNOWN" : "NO HOLDER");
		if (nids > 0)
			values[13] = ids[0];	/* blocking_session */
		else
			nulls[13] = true;
		values[14] = PointerGetDatum(construct_array(ids, nids, INT8OID, 8,
													 FLOAT8PASSBYVAL,
													 TYPALIGN_DOUBLE));
		if (nblocks > 0)
		{
			values[15] = CStringGetTextDatum(node->head_status);
			if (node->head_id != 0)
				values[16] = Int64GetDatum(node->head_id);
			else
				nulls[16] = true;
		}
		else
		{
			values[15] = CStringGetTextDatum("NO HOLDER");
			nulls[16] = true;
		}
	}

	if (with_node)
		all_values[0] = Int32GetDatum(ks_node_id());	/* inst_id */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, all_values,
						 all_nulls);
}

/*
 * Put a row for each session of this server, with this node's number first
 * if with_node.
 */
static void
ks_list_vsession(ReturnSetInfo *rsinfo, bool with_node)
{
	bool		read_all_stats;
	TimestampTz now = GetCurrentTimestamp();
	KsSession  *sessions;
	int			nsessions;
	KsLockGraph graph;
	int			i;

	read_all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	sessions = ks_registry_snapshot(&nsessions, true);
	ks_lock_graph_read(&graph, sessions, nsessions);
	for (i = 0; i < nsessions; i++)
	{
		KsActivity	activity;

		ks_put_vsession_row(rsinfo, with_node, &graph, &sessions[i],
							ks_read_activity(sessions[i].procno, sessions[i].pid,
											 &activity, NULL, false) ? &activity : NULL,
							read_all_stats, now);
	}
}

/*
 * kill_session_vsession() returns setof the columns of v$session: this
 * server's client sessions, with the lock graph read once.
 */
Datum
kill_session_vsession(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_list_vsession((ReturnSetInfo *) fcinfo->resultinfo, false);
	return (Datum) 0;
}

/* The columns of a row that only roles that may see its session see. */
static const int ks_vsession_private[] = {3, 4, 5, 7, 8, 9, 10, 11, 17, 18, 19};

/*
 * Whether a row of node's v$session, its columns as text, may be shown:
 * its SID must carry that node, and so must every session it names as a
 * blocker, so that no node can point a kill at another node's session.  What the caller may not see of another role's session is
 * hidden as v$session hides it here.
 */
static bool
ks_node_vsession_row_ok(int node, const char **row, bool read_all_stats)
{
	static const int ids[] = {0, 13, 16};
	Oid			role;
	int			i;

	for (i = 0; i < lengthof(ids); i++)
	{
		long long	id;
		char	   *end;

		if (row[ids[i]] == NULL)
		{
			if (ids[i] == 0)
				return false;
			continue;
		}
		errno = 0;
		id = strtoll(row[ids[i]], &end, 10);
		if (end == row[ids[i]] || *end != '\0' || errno != 0 ||
			!ks_id_valid(id) || ks_id_node(id) != node)
			return false;
	}
	/* blocking_sessions: "{id,id,...}" */
	if (row[14] != NULL)
	{
		const char *p = row[14];

		if (*p++ != '{')
			return false;
		while (*p != '}')
		{
			long long	id;
			char	   *end;

			errno = 0;
			id = strtoll(p, &end, 10);
			if (end == p || errno != 0 || !ks_id_valid(id) ||
				ks_id_node(id) != node || (*end != ',' && *end != '}'))
				return false;
			p = *end == ',' ? end + 1 : end;
		}
		if (p[1] != '\0')
			return false;
	}
	role = row[2] != NULL ? get_role_oid(row[2], true) : InvalidOid;
	if (!read_all_stats &&
		!(OidIsValid(role) && has_privs_of_role(GetUserId(), role)))
	{
		for (i = 0; i < lengthof(ks_vsession_private); i++)
			row[ks_vsession_private[i]] = NULL;
	}
	return true;
}

/*
 * kill_session_cluster_vsession() returns setof (inst_id, the columns of
 * v$session): this server's sessions and every other node's in
 * kill_session_nodes, each node answering for its own sessions and its own
 * lock graph, as its v$session shows them to the caller's role there.  The
 * nodes are read at once, while this server's rows are taken; a node that
 * cannot be read gives a WARNING, and the list comes without its rows.
 */
Datum
kill_session_cluster_vsession(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_cluster_list(fcinfo, "v$session", "*", KS_VSESSION_COLS,
					ks_list_vsession, ks_node_vsession_row_ok,
					ks_wait_timeout_ms());
	return (Datum) 0;
}
