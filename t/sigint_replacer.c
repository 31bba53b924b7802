/*-------------------------------------------------------------------------
 *
 * sigint_replacer.c
 *		For t/018_sql_id_cancel.pl only, not part of kill_session: a
 *		library that, as it is loaded into a session, replaces the SIGINT
 *		handler with PostgreSQL's own, as another extension could.  The
 *		test builds it with the server's pg_config and LOADs it by path.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  t/sigint_replacer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "libpq/pqsignal.h"
#include "tcop/tcopprot.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	pqsignal(SIGINT, StatementCancelHandler);
}
