# What callers and clients are told: every false of kill_sessions() with
# its reason (a session listed twice, one that does not exist, a signal
# that fails, a session that does not end in time); a failed signal leaves
# no mark behind; a session ends with exactly one FATAL; the Oracle HINTs
# reach a client in another encoding and never carry a password, not even
# into the log.
#
# A failed signal cannot be had from a healthy server: the server runs with
# a small LD_PRELOAD library whose kill() fails with EPERM for SIGTERM to
# the one PID written in a file, and passes everything else through.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $shim_dir = PostgreSQL::Test::Utils::tempdir;
my $fail_file = "$shim_dir/fail_pid";
open(my $src, '>', "$shim_dir/failkill.c") or die;
print $src <<'EOF';
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

int
kill(pid_t pid, int sig)
{
	static int	(*real_kill) (pid_t, int);
	const char *file = getenv("KS_KILL_FAILS_FOR");

	if (real_kill == NULL)
		real_kill = (int (*) (pid_t, int)) dlsym(RTLD_NEXT, "kill");
	if (sig == SIGTERM && file != NULL)
	{
		FILE	   *f = fopen(file, "r");
		long		target = 0;

		if (f != NULL)
		{
			if (fscanf(f, "%ld", &target) != 1)
				target = 0;
			fclose(f);
		}
		if (target != 0 && (pid == target || pid == -target))
		{
			errno = EPERM;
			return -1;
		}
	}
	return real_kill(pid, sig);
}
EOF
close($src);
system('cc', '-shared', '-fPIC', '-o', "$shim_dir/failkill.so",
	"$shim_dir/failkill.c", '-ldl') == 0
  or die 'could not build the kill() shim';

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'kill_session'
log_min_error_statement = panic
});
{
	local $ENV{LD_PRELOAD} = "$shim_dir/failkill.so";
	local $ENV{KS_KILL_FAILS_FOR} = $fail_file;
	$node->start;
}
$node->safe_psql('postgres', q{
	CREATE EXTENSION kill_session;
	CREATE ROLE dba LOGIN;
	CREATE ROLE app LOGIN;
	GRANT ALTER SYSTEM TO dba;
	GRANT pg_read_all_stats TO dba;
	CREATE DATABASE u8 TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
});
$node->safe_psql('u8', 'CREATE EXTENSION kill_session');

sub fail_signals_to
{
	my ($pid) = @_;
	open(my $f, '>', $fail_file) or die;
	print $f $pid // 0;
	close($f);
}

my $dba = KsWire->connect($node, user => 'dba');
my $dba_id = $dba->session_id;

# -- A failed signal -----------------------------------------------------

my $app = KsWire->connect($node, user => 'app');
my $app_id = $app->session_id;
fail_signals_to($app->pid);
my $r = $dba->query("SELECT kill_session('$app_id')");
is($r->{error}{C}, '58000', 'kill_session: a failed signal is an error (58000)');
like($r->{error}{M}, qr/^could not send signal to process \d+: Operation not permitted$/,
	'naming the process and why');
is($dba->value("SELECT command FROM processlist WHERE id = $app_id"), 'Sleep',
	'the session is not left marked as killed');

my $other = KsWire->connect($node, user => 'app');
my $other_id = $other->session_id;
$r = $dba->query("SELECT id, killed FROM kill_sessions(ARRAY[$app_id, $other_id])");
is_deeply($r->{rows}, [ [ $app_id, 'f' ], [ $other_id, 't' ] ],
	'kill_sessions: the failed signal is false, the other session killed');
is(scalar @{ $r->{notices} }, 1, 'with one message');
is($r->{notices}[0]{V}, 'WARNING', 'a WARNING');
is($r->{notices}[0]{C}, '58000', 'with the SQLSTATE of the error');
like($r->{notices}[0]{M}, qr/^could not send signal to process \d+: Operation not permitted$/,
	'and its message');
is($r->{notices}[0]{D}, "Session $app_id was not killed.", 'saying which session');
is($app->value('SELECT 1'), '1', 'that session is still there');
fail_signals_to(undef);
$app->close;

# -- Every false with its reason -------------------------------------------

my @apps = map { KsWire->connect($node, user => 'app') } 1 .. 2;
my ($x, $y) = map { $_->session_id } @apps;
$r = $dba->query("SELECT id, killed FROM kill_sessions(ARRAY[$x, $y, $x, 4294967295, $x])");
is_deeply($r->{rows},
	[ [ $x, "t" ], [ $y, "t" ], [ $x, "t" ], [ "4294967295", "f" ], [ $x, "t" ] ],
	'a session listed three times is killed once, and each row shows that kill');
is_deeply([ map { "$_->{V}: $_->{M}" } @{ $r->{notices} } ],
	[ "NOTICE: session ID $x is listed more than once",
	  'NOTICE: session ID 4294967295 does not exist' ],
	'one NOTICE for the repeated ID, one for the missing one');

# The caller's own session listed twice, between two others: the rows of
# both repeat their kill, and the session ends after the statement.
my $self = KsWire->connect($node, user => 'dba');
my $self_id = $self->session_id;
my $c = KsWire->connect($node, user => 'app');
my $c_id = $c->session_id;
$self->send_query("SELECT id, killed FROM kill_sessions(ARRAY[$c_id, $self_id, $c_id, $self_id])");
my $trace = $self->trace(10);
is_deeply($trace,
	[ 'T', "D:$c_id,t", "D:$self_id,t", "D:$c_id,t", "D:$self_id,t", 'C:SELECT 4',
	  'E:FATAL:57P01', 'EOF' ],
	'ARRAY[a, self, a, self]: all true, then the session ends');

# A session that does not end in time.
my $stopped = KsWire->connect($node, user => 'app');
my $stopped_id = $stopped->session_id;
kill 'STOP', $stopped->pid;
$r = $dba->query("SET kill_session.wait_timeout = 200; SELECT id, killed FROM kill_sessions(ARRAY[$stopped_id])");
is_deeply($r->{rows}, [ [ $stopped_id, 'f' ] ], 'a session that does not end in time: false');
is($r->{notices}[0]{M}, '1 session marked for kill', 'with a WARNING (ORA-00031)');
is($r->{notices}[0]{V}, 'WARNING', 'that is a WARNING');
kill 'CONT', $stopped->pid;
$dba->query('RESET kill_session.wait_timeout');

# -- One end, one FATAL ----------------------------------------------------

# A session that kills itself and is terminated by PostgreSQL in the same
# statement ends once, with one FATAL.
$self = KsWire->connect($node);
$self_id = $self->session_id;
$self->send_query("SELECT kill_session('$self_id'), pg_terminate_backend(pg_backend_pid())");
$trace = $self->trace(10);
is(scalar(grep { /^E:/ } @$trace), 1, 'one FATAL, not two: ' . join(' ', @$trace));
is($trace->[-1], 'EOF', 'and the connection is closed');

# -- The HINTs ---------------------------------------------------------------

# A client in LATIN1, a server in UTF8: the syntax error reaches the client
# with its HINT, whatever bytes the statement's escapes decode to.
{
	local $ENV{PGCLIENTENCODING} = 'LATIN1';
	my ($ret, $stdout, $stderr) = $node->psql('u8',
		q{CREATE USER x IDENTIFIED BY E'p\xff\xfe'});
	like($stderr, qr/ERROR:  unrecognized role option "identified"/,
		'a LATIN1 client gets the error, not an encoding error');
	like($stderr, qr/HINT:  On PostgreSQL run: CREATE USER x PASSWORD '<password>';/,
		'with its HINT');
	($ret, $stdout, $stderr) = $node->psql('u8',
		qq{CREATE USER "caf\xe9" IDENTIFIED BY pw});
	like($stderr, qr/HINT:  On PostgreSQL run: CREATE USER "caf\xe9" PASSWORD '<password>';/,
		'a name the client typed in LATIN1 comes back in LATIN1');
}

# With log_min_error_statement = panic PostgreSQL keeps the statement out of
# the log; so does the HINT: no password in the log, in any case.
my $log_offset = -s $node->logfile;
$node->psql('postgres', 'CREATE USER kill_user IDENTIFIED BY s3cretPW');
$node->psql('postgres', 'ALTER USER kill_user IDENTIFIED BY "An0ther-Secret"');
$node->psql('postgres', "CREATE USER kill_user IDENTIFIED BY 'th1rd'");
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/HINT:  On PostgreSQL run: ALTER USER kill_user PASSWORD '<password>';/,
	'the HINT is logged');
unlike($log, qr/s3cret|an0ther|th1rd/i, 'no password is in the log');

ok(!$node->log_contains(qr/PANIC|TRAP|terminated by signal/), 'no crash');
$node->stop;
done_testing();
