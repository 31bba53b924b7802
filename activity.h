/*-------------------------------------------------------------------------
 *
 * activity.h
 *		What a backend is doing now, read in place from its backend status
 *		entry.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  activity.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ACTIVITY_H
#define KS_ACTIVITY_H

#include "utils/backend_status.h"
#include "utils/timestamp.h"

typedef struct KsActivity
{
	BackendState state;
	Oid			userid;
	Oid			databaseid;
	int64		query_id;		/* its statement's query ID, or 0 */
	TimestampTz proc_start;		/* when its process started */
	TimestampTz xact_start;		/* when its transaction started, or 0 */
	TimestampTz stmt_start;		/* when its current statement started */
	TimestampTz state_start;	/* when its state last changed */
	char		appname[NAMEDATALEN];
	bool		copy_from_client;	/* it runs a COPY FROM STDIN */
	int64		copy_bytes;		/* the bytes that COPY has read */
	char	   *statement;		/* if a buffer was given, and one runs (or
								 * with last_too, ran): its text there */
} KsActivity;

extern bool ks_read_activity(int procno, pid_t pid, KsActivity *activity,
							 char *statement, bool last_too);
extern bool ks_backend_activity(pid_t pid, KsActivity *activity);

#endif							/* KS_ACTIVITY_H */
