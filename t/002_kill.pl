# kill_session() end to end: waiting for a target, the WARNING when it
# cannot die in time, the audit line, the privilege matrix, and a killer
# cancelled while it waits.  Killing your own session: 007_self_kill.pl.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = ks_node('main');
$node->safe_psql('postgres', q{
	CREATE TABLE t (a int);
	GRANT ALL ON t TO PUBLIC;
	CREATE ROLE app LOGIN;
	CREATE ROLE dba LOGIN;
	CREATE ROLE oradba LOGIN;
	CREATE ROLE nopriv LOGIN;
	CREATE ROLE su2 LOGIN SUPERUSER;
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba;
});

# -- Killing another session -------------------------------------------

my $killer = KsWire->connect($node, user => 'dba');
my $killer_id = $killer->session_id;
my $killer_pid = $killer->pid;

# A busy target: the call returns once the process is gone.
my $target = KsWire->connect($node, user => 'app');
my $target_id = $target->session_id;
my $target_pid = $target->pid;
$target->send_query('SELECT count(*) FROM generate_series(1, 1000000000)');
$node->poll_query_until('postgres',
	"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $target_pid");
my $r = $killer->query("SELECT kill_session('$target_id')");
is_deeply($r->{rows}, [ ['t'] ], 'kill of a busy session returns true');
ok(!kill(0, $target_pid), 'the target process is gone when the call returns');
$r = $target->read_result(10);
is($r->{error}{C}, '57P01', 'the target client got 57P01');
ok( $node->log_contains(
		qr/session $target_id \(pid $target_pid, role "app", database "postgres"\) killed by session $killer_id \(pid $killer_pid, role "dba"\)/),
	'the kill is logged with IDs, PIDs, roles and database');

# A target that cannot die in time (stopped): WARNING after wait_timeout,
# then it dies once continued.
$target = KsWire->connect($node, user => 'app');
$target_id = $target->session_id;
$target_pid = $target->pid;
kill 'STOP', $target_pid;
$killer->query('SET kill_session.wait_timeout = 500');
my $t0 = time();
$r = $killer->query("SELECT kill_session('$target_id')");
my $elapsed = time() - $t0;
is_deeply($r->{rows}, [ ['f'] ], 'kill of a stopped session returns false');
is($r->{notices}[0]{S}, 'WARNING', 'with a WARNING');
is($r->{notices}[0]{M}, "session $target_id marked for kill",
	'saying the session is marked for kill');
cmp_ok($elapsed, '>=', 0.45, "after about wait_timeout ($elapsed s)");
cmp_ok($elapsed, '<', 3 * ks_slow(), 'but not much more');
is($node->safe_psql('postgres', "SELECT command || '/' || state FROM processlist WHERE id = $target_id"),
	'Killed/KILLED', 'the process list shows it as killed');
kill 'CONT', $target_pid;
$r = $target->read_result(10);
is($r->{error}{C}, '57P01', 'once continued it ends with 57P01');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM processlist WHERE id = $target_id"),
	'and leaves the process list');

# wait_timeout = 0: no wait, no warning.
$target = KsWire->connect($node, user => 'app');
$target_id = $target->session_id;
$killer->query('SET kill_session.wait_timeout = 0');
$r = $killer->query("SELECT kill_session('$target_id')");
is_deeply($r->{rows}, [ ['t'] ], 'wait_timeout 0: returns true');
is(scalar @{ $r->{notices} }, 0, 'wait_timeout 0: no warning');
$target->read_result(10);
$killer->query('RESET kill_session.wait_timeout');

# The killer cancelled while it waits (statement_timeout, then
# pg_cancel_backend): an ordinary cancel, and nothing left behind.
sub fd_count
{
	my ($pid) = @_;
	opendir(my $dh, "/proc/$pid/fd") or return -1;
	my $n = grep { !/^\./ } readdir($dh);
	closedir($dh);
	return $n;
}
$target = KsWire->connect($node, user => 'app');
$target_id = $target->session_id;
$target_pid = $target->pid;
kill 'STOP', $target_pid;
$killer->query('SET kill_session.wait_timeout = 60000');
my $fds = fd_count($killer_pid);
$killer->query('SET statement_timeout = 300');
$t0 = time();
$r = $killer->query("SELECT kill_session('$target_id')");
is($r->{error}{C}, '57014', 'statement_timeout cancels the wait');
cmp_ok(time() - $t0, '<', 3 * ks_slow(), 'promptly');
$killer->query('RESET statement_timeout');
is($killer->value('SELECT 1'), '1', 'the killer goes on working');
is(fd_count($killer_pid), $fds, 'no file descriptor left behind');

$killer->send_query("SELECT kill_session('$target_id')");
$node->poll_query_until('postgres',
	"SELECT wait_event = 'BackendTermination' FROM pg_stat_activity WHERE pid = $killer_pid");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($killer_pid)");
$r = $killer->read_result(10);
is($r->{error}{C}, '57014', 'pg_cancel_backend cancels the wait');
is(fd_count($killer_pid), $fds, 'no file descriptor left behind');
kill 'CONT', $target_pid;
$r = $target->read_result(10);
is($r->{error}{C}, '57P01', 'the target still ends');
$killer->query('RESET kill_session.wait_timeout');

# -- The privilege matrix ----------------------------------------------

sub try_kill
{
	my ($who) = @_;
	my $k = KsWire->connect($node, user => $who);
	my $t = KsWire->connect($node, user => 'app');
	my $tid = $t->session_id;
	my $res = $k->query("SELECT kill_session('$tid')");
	my $out = $res->{error} ? $res->{error}{C} : $res->{rows}[0][0];
	$k->close;
	$t->close;
	return $out;
}
is(try_kill('nopriv'), '42501', 'no grant: permission denied');
is(try_kill('dba'), 't', 'GRANT ALTER SYSTEM ON PARAMETER: allowed');
is(try_kill('oradba'), '42501', 'oradba before the Oracle grant: denied');
$node->safe_psql('postgres', 'GRANT ALTER SYSTEM TO oradba');
is(try_kill('oradba'), 't', 'Oracle GRANT ALTER SYSTEM TO: allowed');
$node->safe_psql('postgres', 'REVOKE ALTER SYSTEM FROM oradba');
is(try_kill('oradba'), '42501', 'Oracle REVOKE ALTER SYSTEM FROM: denied again');

my $supersession = KsWire->connect($node, user => 'su2');
my $super_id = $supersession->session_id;
$r = $killer->query("SELECT kill_session('$super_id')");
is($r->{error}{C}, '42501', "a non-superuser cannot kill a superuser's session");
is($r->{error}{D}, 'Only superusers can kill sessions of superusers.',
	'and is told why');
my $su = KsWire->connect($node);
is($su->value("SELECT kill_session('$super_id')"), 't',
	"a superuser can kill a superuser's session");
$r = $supersession->read_result(10);

$node->stop;
done_testing();
