# The killed session is told that it was killed, and by whom: a DETAIL on
# its FATAL 57P01, in the client's stderr and in the server log.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('main');
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	CREATE ROLE dba LOGIN;
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba;
});

# Start psql running a long statement as app; return the harness, its
# stderr buffer and its session ID.
sub start_psql
{
	my ($stdout, $stderr) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-d', $node->connstr('postgres') . ' user=app',
			'-c', 'SELECT pg_sleep(120)'
		],
		'>', \$stdout, '2>', \$stderr);
	my $id;
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM processlist WHERE info = 'SELECT pg_sleep(120)'});
	$id = $node->safe_psql('postgres',
		q{SELECT id FROM processlist WHERE info = 'SELECT pg_sleep(120)'});
	return ($h, \$stderr, $id);
}

my $killer = KsWire->connect($node, user => 'dba');
my $killer_id = $killer->session_id;

# Killed by kill_session(): the client sees who did it.
my ($h, $stderr, $id) = start_psql();
is($killer->value("SELECT kill_session('$id')"), 't', 'psql session killed');
$h->finish;
like(
	$$stderr,
	qr/FATAL:  terminating connection due to administrator command\nDETAIL:  Session $id was killed by role "dba" \(session $killer_id\)\./,
	"psql's stderr names the killer");
ok( $node->log_contains(
		qr/FATAL:  terminating connection due to administrator command\n.*DETAIL:  Session $id was killed by role "dba" \(session $killer_id\)\./
	),
	'so does the server log');

# Ended by pg_terminate_backend: untouched.
my $offset = -s $node->logfile;
($h, $stderr, $id) = start_psql();
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid, 5000) FROM processlist WHERE id = $id");
$h->finish;
like($$stderr, qr/FATAL:  terminating connection due to administrator command/,
	'pg_terminate_backend: the usual FATAL');
unlike($$stderr, qr/DETAIL/, 'pg_terminate_backend: no DETAIL for the client');
my $log = slurp_file($node->logfile, $offset);
like($log, qr/FATAL:  terminating connection due to administrator command/,
	'pg_terminate_backend: FATAL in the log');
unlike($log, qr/DETAIL:  Session/, 'pg_terminate_backend: no DETAIL in the log');

# A session that killed itself says so.
my $c = KsWire->connect($node, user => 'dba');
my $self_id = $c->session_id;
my $r = $c->query("SELECT kill_session('$self_id')");
is($r->{error}{D}, "Session $self_id was killed by itself.",
	'self-kill: killed by itself');

# With log_min_messages = panic the FATAL never reaches the log, the hook
# does not run, and the DETAIL is simply missing; nothing else changes.
$node->append_conf('postgresql.conf', 'log_min_messages = panic');
$node->reload;
($h, $stderr, $id) = start_psql();
is($killer->value("SELECT kill_session('$id')"), 't',
	'log_min_messages = panic: the kill works');
$h->finish;
like($$stderr, qr/FATAL:  terminating connection due to administrator command/,
	'log_min_messages = panic: the client gets the FATAL');
unlike($$stderr, qr/DETAIL/, 'log_min_messages = panic: without the DETAIL');
my ($ret, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM KILL SESSION '1'});
like($err, qr/syntax error at or near "KILL"/, 'the Oracle statement: syntax error');
unlike($err, qr/HINT/, 'log_min_messages = panic: without the HINT');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server carries on');

$node->stop;
done_testing();
