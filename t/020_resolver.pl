# The resolver child of a forwarded call (resolve.c), on the streaming
# cluster of t/013 with node 2 under the resolver shim of t/015:
#
# - a backend that ends while its child resolves a name, by
#   pg_terminate_backend, by a kill of its session, or because its
#   postmaster died, takes the child with it: the client sees the end at
#   once, not when the resolver answers, no child is left, and after the
#   postmaster's death the server starts again at once;
# - every address a name resolves to is passed on, each once: a first
#   address that refuses does not fail the call, a port list with one
#   port per host follows the hosts, and when every address refuses the
#   error names each;
# - a fork() that the kernel refuses (vm.overcommit_memory = 2) fails the
#   call with 08001 and a HINT, and a server with hostaddr needs no child.

use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use KsNode;
use KsWire;

my @nodes = ks_cluster();
my ($n1, $n2, $n3) = @nodes;
my $END = [ 'E:FATAL:57P01', 'EOF' ];
# A call's client: its row description, then the FATAL and the end.
my $CALL_END = [ 'T', 'E:FATAL:57P01', 'EOF' ];
my $n3_port = $n3->port;

sub refused { return (ks_run_as(@_))[1]; }

# A kill of session $id from node 2: 't', or psql's error.
sub kill_from_n2
{
	my ($id) = @_;
	my ($out, $err) = ks_run_as($n2, 'postgres', "SELECT kill_session('$id')");
	return $out eq 't' ? $out : $err;
}

# The children of process $pid.
sub children_of
{
	my ($pid) = @_;
	my @children;
	for my $stat (glob '/proc/[0-9]*/stat')
	{
		open(my $fh, '<', $stat) or next;
		my $line = <$fh>;
		close $fh;
		push @children, $1
		  if defined $line && $line =~ /^(\d+) \(.*\) \S (\d+) /s && $2 == $pid;
	}
	return sort { $a <=> $b } @children;
}

# Which of these processes are still there, even as a zombie: a child
# reaped by its backend is not.
sub present
{
	return grep { -e "/proc/$_" } @_;
}

# On node 2, the resolver shim.
my $shim = ks_resolver_shim();
sub start_n2
{
	local $ENV{LD_PRELOAD} = $shim;
	return $n2->start(fail_ok => 1);
}
$n2->stop;
start_n2() or die 'node 2 did not start';

# Node 3 reached through a server named $name whose options are $options.
sub node3_via
{
	my ($name, $options) = @_;
	$n1->safe_psql('postgres', qq{
		CREATE SERVER $name FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS ($options, dbname 'postgres');
		CREATE USER MAPPING FOR postgres SERVER $name;
		UPDATE kill_session_nodes SET server_name = '$name' WHERE node_id = 3;
	});
	$n1->wait_for_catchup($n2, 'replay', $n1->lsn('insert'));
}

# -- Every address of a name -------------------------------------------------

node3_via('two3', "host 'two.kill-session.test', port '$n3_port'");
my ($v, $id) = ks_victim($n3);
is(kill_from_n2($id), 't',
	'a name whose first address refuses: libpq tries the next, and the call goes on');
is_deeply($v->trace(10), $END, 'the session ends');

# Two hosts, each with its port: the name's two addresses take its port.
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
node3_via('twoports3',
	"host 'two.kill-session.test,127.0.0.1', port '$n3_port,$dead_port'");
($v, $id) = ks_victim($n3);
is(kill_from_n2($id), 't',
	'a list of hosts and ports: each address of the name with the name\'s port');
is_deeply($v->trace(10), $END, 'the session ends');

node3_via('refused3', "host 'refused.kill-session.test', port '$n3_port'");
($v, $id) = ks_victim($n3);
my $err = refused($n2, 'postgres', "SELECT kill_session('$id')");
like($err, qr/ERROR:  08001: could not connect to node 3\n/,
	'every address refuses: 08001');
my %tried;
# libpq names the address, after the host name if it names that too.
$tried{ $2 // $1 }++
  while $err =~ /connection to server at "([^"]+)"(?: \(([^)]+)\))?, port $n3_port failed/g;
is_deeply(\%tried, { '127.0.0.2' => 1, '127.0.0.3' => 1 },
	'libpq tried each address of the name, once');
is($v->value('SELECT 1'), '1', 'the session lives on');
$v->close;

# -- fork() refused, and hostaddr ------------------------------------------------

# As under vm.overcommit_memory = 2 when the commit limit is reached: the
# call fails, saying why and what needs no child.
my $fork_fails = ($shim =~ s{[^/]*$}{}r) . 'fork_fails';
append_to_file($fork_fails, '');
($v, $id) = ks_victim($n3);
like(refused($n2, 'postgres', "SELECT kill_session('$id')"),
	qr/ERROR:  08001: could not connect to node 3\nDETAIL:  Could not start resolving its host name: Cannot allocate memory\.\nHINT:  Give foreign server "refused3" option hostaddr, the node's address: then no process is started to resolve its name\./,
	'fork() refused: 08001, why, and the HINT');
# With hostaddr, no child: the name that takes 120 s is not resolved.
node3_via('hostaddr3',
	"host 'stuck.kill-session.test', hostaddr '127.0.0.1', port '$n3_port'");
my $t0 = time();
is(kill_from_n2($id), 't',
	'a server with hostaddr: the call goes on, with fork() still refused');
cmp_ok(time() - $t0, '<', 5 * ks_slow(), 'at once: the name was not resolved');
is_deeply($v->trace(10), $END, 'the session ends');
unlink $fork_fails;

# -- The child ends with its backend -------------------------------------------

node3_via('stuck3', "host 'stuck.kill-session.test', port '$n3_port'");

# A forwarded call on node 2 that waits for its resolver: the client, its
# session ID and its backend's children (the resolver).
sub resolving_call
{
	my (undef, $vid) = ks_victim($n3);
	my $caller = KsWire->connect($n2);
	my $caller_id = $caller->session_id;
	$caller->query(q{SET kill_session.node_timeout = '600s'});
	$caller->send_query("SELECT kill_session('$vid')");
	my @children;
	my $until = time() + 30 * ks_slow();
	while (!(@children = children_of($caller->pid)) && time() < $until)
	{
		usleep(20_000);
	}
	return ($caller, $caller_id, @children);
}

# How long the client waited for its connection's end, and what it saw.
sub end_seen
{
	my ($caller, $t0) = @_;
	my $trace = $caller->trace(10 * ks_slow());
	return (time() - $t0, $trace);
}

my $at_once = 5 * ks_slow();
my ($caller, $caller_id, @children) = resolving_call();
is(scalar(@children), 1, 'a call to a name that takes 120 s: one resolver child');
$t0 = time();
$n2->safe_psql('postgres', 'SELECT pg_terminate_backend(' . $caller->pid . ')');
my ($elapsed, $trace) = end_seen($caller, $t0);
is_deeply($trace, $CALL_END, 'pg_terminate_backend: the client sees FATAL and the end');
cmp_ok($elapsed, '<', $at_once, "at once (${elapsed}s), not when the resolver answers");
is(scalar(present(@children)), 0, 'and no resolver child is left');

($caller, $caller_id, @children) = resolving_call();
is(scalar(@children), 1, 'again, one resolver child');
$t0 = time();
is(kill_from_n2($caller_id), 't',
	'kill_session of the resolving session, from another session');
($elapsed, $trace) = end_seen($caller, $t0);
is_deeply($trace, $CALL_END, 'the client sees FATAL and the end');
cmp_ok($elapsed, '<', $at_once, "at once (${elapsed}s)");
is(scalar(present(@children)), 0, 'and no resolver child is left');

# The postmaster dies: its backend leaves when it sees that, and nothing
# of the old server stays attached to its shared memory.
($caller, $caller_id, @children) = resolving_call();
is(scalar(@children), 1, 'again, one resolver child');
my $pm = slurp_file($n2->data_dir . '/postmaster.pid') =~ /^(\d+)/ ? $1 : die;
my @server = grep { $_ != $caller->pid } children_of($pm);
$t0 = time();
$n2->kill9;
($elapsed, $trace) = end_seen($caller, $t0);
# (No FATAL: the backend leaves with proc_exit(), its output unsent.)
is_deeply($trace, ['EOF'], 'the postmaster killed: the client sees the end');
cmp_ok($elapsed, '<', $at_once, "at once (${elapsed}s)");
is(scalar(present(@children)), 0, 'and no resolver child is left');
# The server's other processes leave as they see the postmaster gone, and
# are reaped (a zombie postmaster would still hold postmaster.pid).
my $until = time() + 30 * ks_slow();
usleep(50_000) while present($pm, @server, $caller->pid) && time() < $until;
is(scalar(present($pm, @server, $caller->pid)), 0, 'the old server is gone');
ok(start_n2(), 'the server starts again at once');
unlike(slurp_file($n2->logfile), qr/pre-existing shared memory block/,
	'no process of the old server held its shared memory');
($v, $id) = ks_victim($n3);
node3_via('node3b', "host '127.0.0.1', port '$n3_port'");
is(kill_from_n2($id), 't',
	'and forwards calls again');
is_deeply($v->trace(10), $END, 'the session ends');

done_testing();
