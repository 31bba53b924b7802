// What postgres.js shows for disconnect_session(..., post_transaction =>
// true), and the handling that works.  Used by t/011_disconnect.pl:
//   node disconnect_postgresjs.js HOST PORT
// The transaction of sql.begin() commits and its row is there.  The next
// query on the same instance fails with a connection error (ECONNRESET,
// CONNECTION_CLOSED or 57P01), unless postgres.js saw the connection close
// first and reconnected; and one sent right after a failed one may never
// settle.  So on such an error the application ends the instance and
// makes a new one, whose query succeeds.
'use strict';
const postgres = require('postgres');

const [host, port] = process.argv.slice(2);
const options = { host, port: Number(port), database: 'postgres', onnotice: () => {} };

// Whether p settles within ms: 'ok', its error's code, or 'no answer'.
function outcome(p, ms) {
	return Promise.race([
		p.then(() => 'ok', (e) => e.code || e.constructor.name),
		new Promise((resolve) => setTimeout(() => resolve('no answer'), ms))]);
}

async function main() {
	const dba = postgres({ ...options, username: 'dba' });
	let sql = postgres({ ...options, username: 'app', max: 1 });
	console.log('commit:', await outcome(sql.begin(async (tx) => {
		const [{ id }] = await tx`SELECT id FROM processlist WHERE pid = pg_backend_pid()`;
		await tx`INSERT INTO t VALUES (4)`;
		await dba`SELECT disconnect_session(${String(id)}, post_transaction => true)`;
	}), 10000));
	console.log('row:', (await dba`SELECT count(*) FROM t WHERE a = 4`)[0].count);
	console.log('next:', await outcome(sql`SELECT 1`, 10000));
	console.log('same instance:', await outcome(sql`SELECT 2`, 3000));
	await outcome(sql.end({ timeout: 0 }), 3000);
	sql = postgres({ ...options, username: 'app', max: 1 });
	console.log('new instance:', await outcome(sql`SELECT 3`, 10000));
	await sql.end();
	await dba.end();
}

main().catch((e) => {
	console.error(e);
	process.exit(1);
});
