/*-------------------------------------------------------------------------
 *
 * session_id.h
 *		Parser of the session string of ALTER SYSTEM KILL SESSION.
 *
 * Pure C with no PostgreSQL dependency, so that a fuzzer can link it
 * without the server.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  session_id.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SESSION_ID_H
#define KS_SESSION_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest client session ID and serial# (32 bits, unsigned). */
#define KS_SESSION_ID_MAX	UINT32_C(4294967295)

/*
 * Parse 'sid' or 'sid, serial#' from the len bytes at str.
 *
 * Blanks (spaces and tabs) are allowed around each part, and leading zeros
 * in each number.  sid must be 1..4294967295 and serial# 0..4294967295.
 * Anything else -- an empty string, signs, letters, decimals, an empty part,
 * a third part, a NUL byte -- is rejected.  Returns true and sets *sid
 * (and *serial, *has_serial) on success; on failure leaves them unset.
 */
extern bool ks_parse_session_id(const char *str, size_t len,
								uint32_t *sid, uint32_t *serial,
								bool *has_serial);

#endif							/* KS_SESSION_ID_H */
