/*-------------------------------------------------------------------------
 *
 * record_view.c
 *		The record as views: kill_session_history, gkill_session_history
 *		and kill_session_stats.
 *
 * What a caller may see of a row follows pg_stat_activity: the statement
 * and the client address only to roles that may see the session's (its own
 * role, members of it, pg_read_all_stats); the rest to everyone.  A row of
 * another node is shown only if its IDs carry the node it names.
 *
 * This file owns the views of the record.  No file of the project calls
 * it; it reads other nodes only through forward.c's ks_cluster_list().
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  record_view.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "history.h"
#include "kill_session.h"

PG_FUNCTION_INFO_V1(kill_session_history);
PG_FUNCTION_INFO_V1(kill_session_cluster_history);
PG_FUNCTION_INFO_V1(kill_session_stats);
PG_FUNCTION_INFO_V1(kill_session_stats_reset);
PG_FUNCTION_INFO_V1(kill_session_checker);

/* pg_stat_activity's name of a backend state. */
static const char *
ks_state_name(int state)
{
	switch ((BackendState) state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_DISABLED:
			return "disabled";
		default:
			return NULL;
	}
}

#define KS_HISTORY_COLS 31

/* Put one row of kill_session_history; who may see what follows pg_stat_activity. */
static void
ks_put_history_row(ReturnSetInfo *rsinfo, bool with_node, const KsHistRow *row,
				   bool read_all_stats)
{
	Datum		all_values[KS_HISTORY_COLS + 1] = {0};
	bool		all_nulls[KS_HISTORY_COLS + 1] = {0};
	Datum	   *values = with_node ? &all_values[1] : all_values;
	bool	   *nulls = with_node ? &all_nulls[1] : all_nulls;
	const KsKiller *a = &row->actor;
	bool		visible = !row->forwarded &&
		(read_all_stats ||
		 (OidIsValid(row->victim_roleid) &&
		  has_privs_of_role(GetUserId(), row->victim_roleid)));
	const char *s;
	int			i = 0;

#define KS_TEXT(str) \
	do { const char *t_ = (str); \
		if (t_ == NULL) nulls[i++] = true; \
		else values[i++] = CStringGetTextDatum(t_); } while (0)
#define KS_NONZERO(cond, datum) \
	do { if (cond) values[i++] = (datum); else nulls[i++] = true; } while (0)

	values[i++] = Int64GetDatum((int64) row->seq);	/* seq */
	values[i++] = TimestampTzGetDatum(row->at); /* at */
	KS_TEXT(ks_history_action_name(row->action));	/* action */
	values[i++] = Int64GetDatum(row->victim_id);	/* session_id */
	values[i++] = Int32GetDatum(row->victim_node);	/* node */
	KS_NONZERO(row->victim_pid != 0, Int32GetDatum(row->victim_pid));	/* pid */
	KS_TEXT(row->forwarded ? NULL : NameStr(row->victim_role)); /* username */
	KS_TEXT(row->forwarded ? NULL : NameStr(row->victim_db));	/* database */
	KS_TEXT(row->forwarded ? NULL : row->victim_app);	/* application_name */
	/* What pg_stat_activity shows only to roles that may see the session. */
	KS_TEXT(!visible ? NULL : row->victim_client);	/* client */
	KS_TEXT(!visible ? NULL : ks_state_name(row->victim_state));	/* state */
	KS_NONZERO(visible && row->victim_xact_start != 0,
			   TimestampTzGetDatum(row->victim_xact_start));	/* xact_start */
	KS_NONZERO(visible && row->victim_running && row->victim_sql_id != 0,
			   Int64GetDatum(row->victim_sql_id));	/* sql_id */
	KS_NONZERO(visible && !row->victim_running && row->victim_sql_id != 0,
			   Int64GetDatum(row->victim_sql_id));	/* prev_sql_id */
	if (row->victim_state < 0)
		nulls[i++] = true;		/* statement */
	else
		KS_TEXT(visible ? ks_valid_text(row->victim_statement) :
				"<insufficient privilege>");
	KS_NONZERO(row->blocking >= 0, Int32GetDatum(row->blocking));	/* blocking */
	KS_NONZERO(a->sid != 0, Int64GetDatum(ks_global_id(a->sid)));	/* actor_session_id */
	values[i++] = Int32GetDatum(a->pid);	/* actor_pid */
	KS_TEXT(NameStr(a->role));	/* actor_username */
	values[i++] = Int32GetDatum(row->actor_node);	/* actor_node */
	KS_NONZERO(a->origin_pid != 0, Int32GetDatum(a->origin_node));	/* origin_node */
	KS_NONZERO(a->origin_pid != 0, Int64GetDatum(a->origin_sid));	/* origin_session_id */
	KS_NONZERO(a->origin_pid != 0, Int32GetDatum(a->origin_pid));	/* origin_pid */
	KS_TEXT(a->origin_pid != 0 ? NameStr(a->origin_role) : NULL);	/* origin_username */
	KS_NONZERO(a->origin_pid != 0, BoolGetDatum(a->origin_vouched));	/* origin_vouched */
	KS_TEXT(a->reason[0] != '\0' ? ks_valid_text(a->reason) : NULL);	/* reason */
	KS_TEXT(ks_history_outcome_name(row->outcome)); /* outcome */
	s = row->detail[0] != '\0' ? ks_valid_text(row->detail) : NULL;
	KS_TEXT(s);					/* outcome_detail */
	KS_NONZERO(row->done_at != 0, TimestampTzGetDatum(row->done_at));	/* done_at */
	KS_NONZERO(row->ended_at != 0, TimestampTzGetDatum(row->ended_at)); /* ended_at */
	KS_NONZERO(row->ended_at != 0,
			   Float8GetDatum((double) (row->ended_at - row->at) / 1000.0));	/* exit_ms */
	Assert(i == KS_HISTORY_COLS);
#undef KS_TEXT
#undef KS_NONZERO

	if (with_node)
		all_values[0] = Int32GetDatum(ks_node_id());	/* inst_id */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, all_values,
						 all_nulls);
}

/* This server's history, oldest first, after its node's number if with_node. */
static void
ks_list_history(ReturnSetInfo *rsinfo, bool with_node)
{
	bool		read_all_stats = has_privs_of_role(GetUserId(),
												   ROLE_PG_READ_ALL_STATS);
	int			n;
	KsHistRow  *rows = ks_history_rows(&n);
	int			i;

	for (i = 0; i < n; i++)
		ks_put_history_row(rsinfo, with_node, &rows[i], read_all_stats);
}

/*
 * kill_session_history() returns setof record: the rows of the history,
 * oldest first.
 */
Datum
kill_session_history(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_list_history((ReturnSetInfo *) fcinfo->resultinfo, false);
	return (Datum) 0;
}

/* An ID column of a node's row: valid, and of node; NULL if allowed. */
static bool
ks_id_of_node(const char *value, int node, bool null_ok)
{
	long long	id;
	char	   *end;

	if (value == NULL)
		return null_ok;
	errno = 0;
	id = strtoll(value, &end, 10);
	return end != value && *end == '\0' && errno == 0 && ks_id_valid(id) &&
		ks_id_node(id) == node;
}

/*
 * Whether a row of node's kill_session_history may be shown: its session
 * ID carries the node it names, which is node itself unless the row is of
 * a call node forwarded (no PID there); its actor is a session of node.
 * What the caller may not see of the session here is hidden, as here.
 */
static bool
ks_node_history_row_ok(int node, const char **row, bool read_all_stats)
{
	int			victim_node;
	Oid			role;

	if (row[4] == NULL)
		return false;
	victim_node = atoi(row[4]);
	if (!ks_id_of_node(row[3], victim_node, false) ||
		(victim_node != node && row[5] != NULL) ||
		!ks_id_of_node(row[16], node, true))
		return false;
	role = row[6] != NULL ? get_role_oid(row[6], true) : InvalidOid;
	if (!read_all_stats &&
		!(OidIsValid(role) && has_privs_of_role(GetUserId(), role)))
	{
		int			private[] = {9, 10, 11, 12, 13};	/* client, state,
														 * xact_start, sql_id,
														 * prev_sql_id */
		int			k;

		for (k = 0; k < lengthof(private); k++)
			row[private[k]] = NULL;
		if (row[14] != NULL)
			row[14] = "<insufficient privilege>";	/* statement */
	}
	return true;
}

/*
 * kill_session_cluster_history() returns setof (inst_id, the columns of
 * kill_session_history): this server's history and every other node's in
 * kill_session_nodes, as each node's view shows it to the caller's role
 * there; a node that cannot be read gives a WARNING.
 */
Datum
kill_session_cluster_history(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_cluster_list(fcinfo, "kill_session_history", "*", KS_HISTORY_COLS,
					ks_list_history, ks_node_history_row_ok,
					ks_wait_timeout_ms());
	return (Datum) 0;
}

/*
 * kill_session_stats() returns setof record: how many actions ended in each
 * outcome, by action and kind of actor, since the counters were reset;
 * only counts above zero.
 */
Datum
kill_session_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KsHistCounts counts;
	int			a;
	int			o;
	int			k;

	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_history_counts(&counts);
	for (a = 0; a < KS_H_NUM_ACTIONS; a++)
		for (o = 1; o < KS_O_NUM_OUTCOMES; o++)
			for (k = 0; k < KS_A_NUM_ACTORS; k++)
			{
				Datum		values[5];
				bool		nulls[5] = {0};

				if (counts.n[a][o][k] == 0)
					continue;
				values[0] = CStringGetTextDatum(ks_history_action_name(a));
				values[1] = CStringGetTextDatum(ks_history_outcome_name(o));
				values[2] = CStringGetTextDatum(ks_history_actor_name(k));
				values[3] = Int64GetDatum((int64) counts.n[a][o][k]);
				values[4] = TimestampTzGetDatum(counts.reset_at);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
									 values, nulls);
			}
	return (Datum) 0;
}

/*
 * kill_session_stats_reset(): the counters start again from zero.  Only
 * superusers may run it unless granted: EXECUTE is revoked from PUBLIC.
 */
Datum
kill_session_stats_reset(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	ks_history_reset_counts();
	PG_RETURN_VOID();
}

/*
 * kill_session_checker(): what the checker has done since the server
 * started, and its process (NULL when it is not running).
 */
Datum
kill_session_checker(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[KS_CHECK_NUM + 1];
	bool		nulls[KS_CHECK_NUM + 1] = {0};
	uint64		counts[KS_CHECK_NUM];
	pid_t		pid;
	int			i;

	ks_check_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	ks_registry_checker_counts(counts, &pid);
	values[0] = Int32GetDatum((int32) pid);
	nulls[0] = pid == 0;
	for (i = 0; i < KS_CHECK_NUM; i++)
		values[i + 1] = Int64GetDatum((int64) counts[i]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
