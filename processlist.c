/*-------------------------------------------------------------------------
 *
 * processlist.c
 *		The process list: client sessions by their session IDs.
 *
 * One pass over the registry and one over PostgreSQL's backend status
 * array (what pg_stat_activity reads), joined on the PID, both read at
 * the call, inside a transaction too.  What a
 * caller may see follows pg_stat_activity: user and database of every
 * session; host, command, time, state and statement of a session only to
 * roles that may see its details (its own role, members of it, and
 * pg_read_all_stats).
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  processlist.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "kill_session.h"

PG_FUNCTION_INFO_V1(kill_session_processlist);

#define KS_PROCESSLIST_COLS	9

/* What is copied out of the registry under its lock. */
typedef struct KsEntry
{
	pid_t		pid;
	uint32		sid;
	bool		killed;
	bool		listed;			/* matched a backend status entry */
	TimestampTz connect_time;
	NameData	user_name;
	NameData	db_name;
	char		host[KS_HOST_LEN];
} KsEntry;

static int
ks_entry_cmp(const void *a, const void *b)
{
	pid_t		pa = ((const KsEntry *) a)->pid;
	pid_t		pb = ((const KsEntry *) b)->pid;

	return (pa > pb) - (pa < pb);
}

static KsEntry *
ks_copy_registry(int *count)
{
	KsEntry    *entries = palloc(sizeof(KsEntry) * ks_shared->nslots);
	int			n = 0;
	int			i;

	LWLockAcquire(ks_shared->lock, LW_SHARED);
	for (i = 0; i < ks_shared->nslots; i++)
	{
		KsSlot	   *slot = &ks_shared->slots[i];
		KsEntry    *e;

		if (slot->pid == 0)
			continue;
		e = &entries[n++];
		e->pid = slot->pid;
		e->sid = slot->sid;
		e->killed = slot->killed;
		e->listed = false;
		e->connect_time = slot->connect_time;
		e->user_name = slot->user_name;
		e->db_name = slot->db_name;
		memcpy(e->host, slot->host, KS_HOST_LEN);
	}
	LWLockRelease(ks_shared->lock);

	qsort(entries, n, sizeof(KsEntry), ks_entry_cmp);
	*count = n;
	return entries;
}

static Datum
ks_seconds_since(TimestampTz start, TimestampTz now, bool *isnull)
{
	long		secs;
	int			usecs;

	if (start == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	TimestampDifference(start, now, &secs, &usecs);
	return Int32GetDatum((int32) Min(secs, PG_INT32_MAX));
}

/*
 * COMMAND and STATE for a backend state, as MySQL and OceanBase users know
 * them.  The README lists every value.
 */
static void
ks_describe_state(BackendState state, bool killed,
				  const char **command, const char **stname)
{
	switch (state)
	{
		case STATE_RUNNING:
		case STATE_FASTPATH:
			*command = "Query";
			*stname = "ACTIVE";
			break;
		case STATE_IDLE:
			*command = "Sleep";
			*stname = "SLEEP";
			break;
		case STATE_IDLEINTRANSACTION:
			*command = "Sleep";
			*stname = "SLEEP IN TRANSACTION";
			break;
		case STATE_IDLEINTRANSACTION_ABORTED:
			*command = "Sleep";
			*stname = "SLEEP IN FAILED TRANSACTION";
			break;
		case STATE_DISABLED:
			*command = "Unknown";
			*stname = "DISABLED";
			break;
		default:
			*command = "Connect";
			*stname = "CONNECTING";
			break;
	}
	if (killed)
	{
		*command = "Killed";
		*stname = "KILLED";
	}
}

/*
 * kill_session_processlist() returns setof (id, user, host, db, command,
 * time, state, info, pid); the view processlist and SHOW PROCESSLIST read
 * it.
 */
Datum
kill_session_processlist(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			me = GetUserId();
	bool		read_all_stats;
	TimestampTz now = GetCurrentTimestamp();
	KsEntry    *entries;
	int			nentries;
	int			nbackends;
	int			i;

	ks_check_loaded();

	InitMaterializedSRF(fcinfo, 0);

	read_all_stats = has_privs_of_role(me, ROLE_PG_READ_ALL_STATS);

	/*
	 * Every call lists the sessions as they are now.  The backend status
	 * array is read through a copy that PostgreSQL keeps for the rest of
	 * the transaction; it is dropped first, as pg_stat_clear_snapshot()
	 * drops it, so that the copy is taken now, after the registry's.
	 */
	pgstat_clear_backend_activity_snapshot();
	entries = ks_copy_registry(&nentries);
	nbackends = pgstat_fetch_stat_numbackends();

	/* Sessions in the backend status array, in its order. */
	for (i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local;
		PgBackendStatus *be;
		KsEntry		key;
		KsEntry    *e;
		Datum		values[KS_PROCESSLIST_COLS] = {0};
		bool		nulls[KS_PROCESSLIST_COLS] = {0};
		char	   *name;

		local = ks_local_beentry_by_index(i);
		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid <= 0)
			continue;
		key.pid = be->st_procpid;
		e = bsearch(&key, entries, nentries, sizeof(KsEntry), ks_entry_cmp);
		if (e == NULL)
			continue;			/* not a client session */
		e->listed = true;

		values[0] = Int64GetDatum((int64) e->sid);
		name = GetUserNameFromId(be->st_userid, true);
		if (name)
			values[1] = CStringGetTextDatum(name);
		else
			nulls[1] = true;
		name = OidIsValid(be->st_databaseid) ?
			get_database_name(be->st_databaseid) : NULL;
		if (name)
			values[3] = CStringGetTextDatum(name);
		else
			nulls[3] = true;
		values[8] = Int32GetDatum(be->st_procpid);

		if (read_all_stats || has_privs_of_role(me, be->st_userid))
		{
			const char *command;
			const char *stname;

			ks_describe_state(be->st_state, e->killed, &command, &stname);
			if (e->host[0] != '\0')
				values[2] = CStringGetTextDatum(e->host);
			else
				nulls[2] = true;
			values[4] = CStringGetTextDatum(command);
			values[5] = ks_seconds_since(be->st_state == STATE_UNDEFINED ?
										 e->connect_time :
										 be->st_state_start_timestamp,
										 now, &nulls[5]);
			values[6] = CStringGetTextDatum(stname);
			if (be->st_state == STATE_RUNNING || be->st_state == STATE_FASTPATH)
			{
				char	   *clipped = pgstat_clip_activity(be->st_activity_raw);

				values[7] = CStringGetTextDatum(clipped);
				pfree(clipped);
			}
			else
				nulls[7] = true;
		}
		else
		{
			nulls[2] = nulls[4] = nulls[5] = nulls[6] = true;
			values[7] = CStringGetTextDatum("<insufficient privilege>");
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	/*
	 * Sessions that have authenticated but are not in the backend status
	 * array yet.
	 */
	for (i = 0; i < nentries; i++)
	{
		KsEntry    *e = &entries[i];
		Datum		values[KS_PROCESSLIST_COLS] = {0};
		bool		nulls[KS_PROCESSLIST_COLS] = {0};
		Oid			role;

		if (e->listed)
			continue;
		role = get_role_oid(NameStr(e->user_name), true);
		values[0] = Int64GetDatum((int64) e->sid);
		values[1] = CStringGetTextDatum(NameStr(e->user_name));
		values[3] = CStringGetTextDatum(NameStr(e->db_name));
		values[8] = Int32GetDatum(e->pid);
		if (read_all_stats || (OidIsValid(role) && has_privs_of_role(me, role)))
		{
			values[2] = CStringGetTextDatum(e->host);
			values[4] = CStringGetTextDatum(e->killed ? "Killed" : "Connect");
			values[5] = ks_seconds_since(e->connect_time, now, &nulls[5]);
			values[6] = CStringGetTextDatum(e->killed ? "KILLED" : "CONNECTING");
			nulls[7] = true;
		}
		else
		{
			nulls[2] = nulls[4] = nulls[5] = nulls[6] = true;
			values[7] = CStringGetTextDatum("<insufficient privilege>");
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	return (Datum) 0;
}
