/*-------------------------------------------------------------------------
 *
 * activity.c
 *		What a backend is doing now, read in place from its backend status
 *		entry: the part of pg_stat_activity that the process list,
 *		v$session, the actions and their record read.
 *
 * This file owns the reading of one status entry.  It is a leaf: it must
 * not call the project's other files.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  activity.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"

#include "activity.h"
#include "compat.h"

/*
 * Read the status entry of the backend whose PGPROC number is procno into
 * *activity, in place, as pgstat_read_current_status() reads each entry:
 * until its change count says no write came in between.  Unlike that
 * function, it copies no other backend's entry, and a statement's text
 * only if the caller gives a buffer for it (pgstat_track_activity_query_size
 * bytes) and the backend runs one (with last_too, or ran one last);
 * activity->statement then points to it, else it is NULL.  False if the entry is not pid's: the backend is still
 * starting, or gone.
 */
bool
ks_read_activity(int procno, pid_t pid, KsActivity *activity,
				 char *statement, bool last_too)
{
	volatile PgBackendStatus *be = ks_status_entry(procno);
	pid_t		entry_pid;

	if (be == NULL)
		return false;
	for (;;)
	{
		int			before;
		int			after;

		pgstat_begin_read_activity(be, before);
		entry_pid = be->st_procpid;
		activity->state = be->st_state;
		activity->userid = be->st_userid;
		activity->databaseid = be->st_databaseid;
		activity->query_id = (int64) be->st_query_id;
		activity->proc_start = be->st_proc_start_timestamp;
		activity->xact_start = be->st_xact_start_timestamp;
		activity->stmt_start = be->st_activity_start_timestamp;
		activity->state_start = be->st_state_start_timestamp;
		strlcpy(activity->appname, (char *) be->st_appname, NAMEDATALEN);
		activity->copy_from_client =
			be->st_progress_command == PROGRESS_COMMAND_COPY &&
			be->st_progress_param[PROGRESS_COPY_COMMAND] == PROGRESS_COPY_COMMAND_FROM &&
			be->st_progress_param[PROGRESS_COPY_TYPE] == PROGRESS_COPY_TYPE_PIPE;
		activity->copy_bytes = be->st_progress_param[PROGRESS_COPY_BYTES_PROCESSED];
		activity->statement = NULL;
		if (statement != NULL &&
			(last_too || activity->state == STATE_RUNNING ||
			 activity->state == STATE_FASTPATH))
		{
			strlcpy(statement, (char *) be->st_activity_raw,
					pgstat_track_activity_query_size);
			activity->statement = statement;
		}
		pgstat_end_read_activity(be, after);
		if (pgstat_read_activity_complete(before, after))
			break;
		CHECK_FOR_INTERRUPTS();
	}
	return entry_pid == pid;
}

/* What the backend pid is doing now; false if it is not in the array. */
bool
ks_backend_activity(pid_t pid, KsActivity *activity)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	return proc != NULL &&
		ks_read_activity(KS_PROCNO(proc), pid, activity, NULL, false);
}
