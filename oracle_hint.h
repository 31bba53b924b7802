/*-------------------------------------------------------------------------
 *
 * oracle_hint.h
 *		The HINT that turns ALTER SYSTEM KILL SESSION into its PostgreSQL
 *		equivalent.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  oracle_hint.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ORACLE_HINT_H
#define KS_ORACLE_HINT_H

extern void ks_add_oracle_hint(ErrorData *edata, int node);

#endif							/* KS_ORACLE_HINT_H */
