/*-------------------------------------------------------------------------
 *
 * history.c
 *		The record of actions on sessions: a fixed ring of rows in shared
 *		memory, the counters beside it, and the file that keeps both over a
 *		clean restart.
 *
 * kill_session.history_size rows (a postmaster setting; 0 turns the
 * history off), each written whole under the history's own lock, so a
 * reader never sees a torn row.  A row is numbered as it is written; the
 * ring keeps the newest, and a row overwritten before its actor completes
 * it stays overwritten.  The counters count every completed action, by
 * action, outcome and kind of actor, whether its row is still in the ring
 * or not, and whether the history is on or not.
 *
 * Like pg_stat_statements, the postmaster writes the ring and counters to
 * a file under pg_stat at a clean shutdown and reads it back, then removes
 * it, at the next start; after a crash or an immediate shutdown they start
 * empty.
 *
 * This file owns the ring, the counters and their file.  It is a leaf: it
 * must not call the project's other files; record.c fills its rows and
 * reads them, and the registry tells it of a session's end.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <unistd.h>

#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "history.h"

/* The file the ring is kept in over a clean restart. */
#define KS_HISTORY_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/kill_session_history.stat"

/* Its first word, and its version: a file of another layout is not read. */
#define KS_HISTORY_MAGIC	0x4B534831	/* "KSH1" */
#define KS_HISTORY_VERSION	3

typedef struct KsHistShared
{
	LWLock	   *lock;			/* protects everything below */
	uint64		next_seq;		/* number of the next row, from 1 */
	int			size;			/* rows in the ring */
	KsHistCounts counts;
	KsHistRow	rows[FLEXIBLE_ARRAY_MEMBER];
} KsHistShared;

typedef struct KsHistFileHeader
{
	uint32		magic;
	uint32		version;
	uint32		row_size;		/* sizeof(KsHistRow) of the writer */
	uint32		nrows;
	uint64		next_seq;
	KsHistCounts counts;
} KsHistFileHeader;

/*
 * The header of version 2 (kill_session 1.5), whose counters had no idle
 * blocker action: read, so that an upgrade keeps the record.
 */
#define KS_H_NUM_ACTIONS_V2		KS_H_IDLE_BLOCKER
typedef struct KsHistFileHeaderV2
{
	uint32		magic;
	uint32		version;
	uint32		row_size;
	uint32		nrows;
	uint64		next_seq;
	uint64		n[KS_H_NUM_ACTIONS_V2][KS_O_NUM_OUTCOMES][KS_A_NUM_ACTORS];
	TimestampTz reset_at;
} KsHistFileHeaderV2;

/* kill_session.history_size */
static int	ks_history_size = 1000;

static KsHistShared *ks_hist = NULL;

void
ks_define_history_settings(void)
{
	DefineCustomIntVariable("kill_session.history_size",
							"Sets how many actions on sessions kill_session_history keeps.",
							"The newest actions are kept in shared memory, and over a clean restart. "
							"Zero turns the history off.",
							&ks_history_size,
							1000,
							0, 100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
}

static Size
ks_history_shmem_size(void)
{
	return add_size(offsetof(KsHistShared, rows),
					mul_size(ks_history_size, sizeof(KsHistRow)));
}

void
ks_history_shmem_request(void)
{
	RequestAddinShmemSpace(ks_history_shmem_size());
	RequestNamedLWLockTranche("kill_session_history", 1);
}

static KsHistRow *
ks_row_of(uint64 seq)
{
	return &ks_hist->rows[(seq - 1) % ks_hist->size];
}

/*
 * Whether the server has just shut down cleanly: its last checkpoint was a
 * shutdown checkpoint.  An immediate shutdown exits the postmaster cleanly
 * too, but after killing every backend, one of which may have been
 * writing a row; the next start recovers, as after a crash.
 */
static bool
ks_clean_shutdown(void)
{
	bool		crc_ok;
	ControlFileData *control = get_controlfile(DataDir, &crc_ok);

	return crc_ok && (control->state == DB_SHUTDOWNED ||
					  control->state == DB_SHUTDOWNED_IN_RECOVERY);
}

/*
 * Write the ring and counters to the file, at the postmaster's exit after a
 * clean shutdown only: after a crash or an immediate shutdown their memory
 * may be half-written.
 */
static void
ks_history_save(int code, Datum arg)
{
	FILE	   *file;
	KsHistFileHeader header;
	uint64		seq;
	uint64		first;
	pg_crc32c	crc;

	if (code != 0 || ks_hist == NULL || !ks_clean_shutdown())
		return;
	file = AllocateFile(KS_HISTORY_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;
	first = ks_hist->size == 0 || ks_hist->next_seq <= (uint64) ks_hist->size ?
		1 : ks_hist->next_seq - ks_hist->size;
	memset(&header, 0, sizeof(header));
	header.magic = KS_HISTORY_MAGIC;
	header.version = KS_HISTORY_VERSION;
	header.row_size = sizeof(KsHistRow);
	header.nrows = ks_hist->size == 0 ? 0 : (uint32) (ks_hist->next_seq - first);
	header.next_seq = ks_hist->next_seq;
	header.counts = ks_hist->counts;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &header, sizeof(header));
	if (fwrite(&header, sizeof(header), 1, file) != 1)
		goto error;
	for (seq = first; ks_hist->size > 0 && seq < ks_hist->next_seq; seq++)
	{
		COMP_CRC32C(crc, ks_row_of(seq), sizeof(KsHistRow));
		if (fwrite(ks_row_of(seq), sizeof(KsHistRow), 1, file) != 1)
			goto error;
	}
	FIN_CRC32C(crc);
	if (fwrite(&crc, sizeof(crc), 1, file) != 1)
		goto error;
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(KS_HISTORY_FILE ".tmp", KS_HISTORY_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", KS_HISTORY_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(KS_HISTORY_FILE ".tmp");
}

/* Every string of a row read from the file ends within its field. */
static void
ks_terminate_strings(KsHistRow *row)
{
	row->victim_role.data[NAMEDATALEN - 1] = '\0';
	row->victim_db.data[NAMEDATALEN - 1] = '\0';
	row->victim_app[NAMEDATALEN - 1] = '\0';
	row->victim_client[KS_HOST_LEN - 1] = '\0';
	row->victim_statement[KS_HISTORY_TEXT_LEN - 1] = '\0';
	row->detail[KS_HISTORY_DETAIL_LEN - 1] = '\0';
	row->actor.role.data[NAMEDATALEN - 1] = '\0';
	row->actor.origin_role.data[NAMEDATALEN - 1] = '\0';
	row->actor.reason[KS_REASON_LEN - 1] = '\0';
}

/*
 * Read the file a clean shutdown left, into a ring just made, and remove
 * it: the newest rows that fit, their numbers kept, and the counters; a
 * file whose checksum does not match gives nothing.
 */
static void
ks_history_load(void)
{
	FILE	   *file = AllocateFile(KS_HISTORY_FILE, PG_BINARY_R);
	KsHistFileHeader header;
	KsHistFileHeaderV2 old;
	KsHistRow	row;
	pg_crc32c	crc;
	pg_crc32c	stored;
	uint32		i;

	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", KS_HISTORY_FILE)));
		return;
	}
	/* The first two words say which header follows; the CRC covers it. */
	if (fread(&header, sizeof(uint32) * 2, 1, file) != 1 ||
		header.magic != KS_HISTORY_MAGIC ||
		(header.version != KS_HISTORY_VERSION && header.version != 2) ||
		fread((char *) (header.version == 2 ? (void *) &old : (void *) &header) +
			  sizeof(uint32) * 2,
			  (header.version == 2 ? sizeof(old) : sizeof(header)) -
			  sizeof(uint32) * 2, 1, file) != 1 ||
		(header.version == 2 ? old.row_size : header.row_size) != sizeof(KsHistRow))
	{
		ereport(LOG,
				(errmsg("ignoring file \"%s\": it was not written by this version of kill_session",
						KS_HISTORY_FILE)));
		goto done;
	}
	INIT_CRC32C(crc);
	if (header.version == 2)
	{
		old.magic = header.magic;
		old.version = header.version;
		COMP_CRC32C(crc, &old, sizeof(old));
		memset(&header.counts, 0, sizeof(header.counts));
		memcpy(header.counts.n, old.n, sizeof(old.n));
		header.counts.reset_at = old.reset_at;
		header.row_size = old.row_size;
		header.nrows = old.nrows;
		header.next_seq = old.next_seq;
	}
	else
		COMP_CRC32C(crc, &header, sizeof(header));
	for (i = 0; i < header.nrows; i++)
	{
		if (fread(&row, sizeof(row), 1, file) != 1)
			break;
		COMP_CRC32C(crc, &row, sizeof(row));
		if (ks_hist->size > 0 && row.seq != 0 && row.seq < header.next_seq &&
			row.seq + ks_hist->size >= header.next_seq)
		{
			ks_terminate_strings(&row);
			*ks_row_of(row.seq) = row;
		}
	}
	FIN_CRC32C(crc);
	if (i < header.nrows || fread(&stored, sizeof(stored), 1, file) != 1 ||
		!EQ_CRC32C(crc, stored))
	{
		/* Torn or damaged: nothing of it is kept. */
		ereport(LOG,
				(errmsg("ignoring file \"%s\": it is truncated or damaged",
						KS_HISTORY_FILE)));
		memset(ks_hist->rows, 0, sizeof(KsHistRow) * ks_hist->size);
		goto done;
	}
	ks_hist->counts = header.counts;
	ks_hist->next_seq = Max(header.next_seq, 1);

done:
	FreeFile(file);
	unlink(KS_HISTORY_FILE);
}

void
ks_history_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ks_hist = ShmemInitStruct("kill_session_history", ks_history_shmem_size(),
							  &found);
	if (!found)
	{
		memset(ks_hist, 0, ks_history_shmem_size());
		ks_hist->lock = &(GetNamedLWLockTranche("kill_session_history"))->lock;
		ks_hist->size = ks_history_size;
		ks_hist->next_seq = 1;
		ks_hist->counts.reset_at = GetCurrentTimestamp();
		ks_history_load();
	}
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
		on_shmem_exit(ks_history_save, (Datum) 0);
}

bool
ks_history_on(void)
{
	return ks_hist != NULL && ks_hist->size > 0;
}

uint64
ks_history_write(KsHistRow *row)
{
	uint64		seq;

	if (!ks_history_on())
		return 0;
	LWLockAcquire(ks_hist->lock, LW_EXCLUSIVE);
	seq = ks_hist->next_seq++;
	row->seq = seq;
	*ks_row_of(seq) = *row;
	LWLockRelease(ks_hist->lock);
	return seq;
}

void
ks_history_complete(uint64 seq, KsHistAction action, KsHistActor actor,
					KsHistOutcome outcome, const char *detail)
{
	if (ks_hist == NULL)
		return;
	LWLockAcquire(ks_hist->lock, LW_EXCLUSIVE);
	ks_hist->counts.n[action][outcome][actor]++;
	if (seq != 0 && ks_hist->size > 0)
	{
		KsHistRow  *row = ks_row_of(seq);

		if (row->seq == seq && row->outcome == KS_O_PENDING)
		{
			row->outcome = outcome;
			row->done_at = GetCurrentTimestamp();
			strlcpy(row->detail, detail ? detail : "", KS_HISTORY_DETAIL_LEN);
		}
	}
	LWLockRelease(ks_hist->lock);
}

void
ks_history_count(KsHistAction action, KsHistActor actor, KsHistOutcome outcome)
{
	ks_history_complete(0, action, actor, outcome, NULL);
}

void
ks_history_ended(uint64 seq)
{
	KsHistRow  *row;

	if (seq == 0 || !ks_history_on())
		return;
	LWLockAcquire(ks_hist->lock, LW_EXCLUSIVE);
	row = ks_row_of(seq);
	if (row->seq == seq && row->ended_at == 0)
		row->ended_at = GetCurrentTimestamp();
	LWLockRelease(ks_hist->lock);
}

KsHistRow *
ks_history_rows(int *count)
{
	KsHistRow  *rows;
	uint64		first;
	uint64		seq;
	int			n = 0;

	uint64		room;

	*count = 0;
	if (!ks_history_on())
		return NULL;

	/*
	 * Room for the rows in use now and those a few writers may add before the
	 * lock is taken; if more come, the newest that fit are copied.
	 */
	LWLockAcquire(ks_hist->lock, LW_SHARED);
	room = Min((uint64) ks_hist->size, ks_hist->next_seq - 1 + 64);
	LWLockRelease(ks_hist->lock);
	rows = MemoryContextAllocHuge(CurrentMemoryContext,
								  sizeof(KsHistRow) * Max(room, 1));
	LWLockAcquire(ks_hist->lock, LW_SHARED);
	first = ks_hist->next_seq <= room ? 1 : ks_hist->next_seq - room;
	for (seq = first; seq < ks_hist->next_seq; seq++)
	{
		KsHistRow  *row = ks_row_of(seq);

		if (row->seq == seq)
			rows[n++] = *row;
	}
	LWLockRelease(ks_hist->lock);
	*count = n;
	return rows;
}

void
ks_history_counts(KsHistCounts *counts)
{
	LWLockAcquire(ks_hist->lock, LW_SHARED);
	*counts = ks_hist->counts;
	LWLockRelease(ks_hist->lock);
}

void
ks_history_reset_counts(void)
{
	LWLockAcquire(ks_hist->lock, LW_EXCLUSIVE);
	memset(ks_hist->counts.n, 0, sizeof(ks_hist->counts.n));
	ks_hist->counts.reset_at = GetCurrentTimestamp();
	LWLockRelease(ks_hist->lock);
}

const char *
ks_history_action_name(KsHistAction action)
{
	switch (action)
	{
		case KS_H_KILL:
			return "kill";
		case KS_H_DISCONNECT:
			return "disconnect";
		case KS_H_DISCONNECT_POST:
			return "disconnect post_transaction";
		case KS_H_CANCEL:
			return "cancel";
		case KS_H_CANCEL_SQL_ID:
			return "cancel sql_id";
		case KS_H_DRAIN:
			return "drain deadline";
		case KS_H_IDLE_BLOCKER:
			return "idle blocker";
		default:
			return "?";
	}
}

const char *
ks_history_outcome_name(KsHistOutcome outcome)
{
	switch (outcome)
	{
		case KS_O_PENDING:
			return NULL;
		case KS_O_EXITED:
			return "exited";
		case KS_O_CANCELLED:
			return "cancelled";
		case KS_O_MARKED:
			return "marked";
		case KS_O_NOT_RUNNING:
			return "not running";
		case KS_O_REFUSED:
			return "refused";
		case KS_O_UNKNOWN:
			return "unknown";
		case KS_O_DONE:
			return "done";
		case KS_O_NOT_DONE:
			return "not done";
		default:
			return "?";
	}
}

const char *
ks_history_actor_name(KsHistActor actor)
{
	switch (actor)
	{
		case KS_A_FORWARDED:
			return "forwarded";
		case KS_A_AUTOMATIC:
			return "automatic";
		default:
			return "session";
	}
}
