# Faults between nodes, tested the way Jepsen tests: each node of a
# streaming cluster in a network namespace of its own, joined to the others
# through a bridge, and at random moments during a loop of forwarded
# calls, one node's link is cut (ip link set ... down: packets are dropped
# silently; this kernel has no netem) and then healed.  The cuts fall
# before a connection is made, on a kept connection, and after the call's
# SQL was sent.  Asserted over every faulted call: a true was a real
# action on the named session (its own client tells); a lost answer is
# 08007, never false; a failure before the call was sent touched nothing;
# no call outlasts node_timeout + wait_timeout; kept connections recover
# after healing; no other session is hurt; nothing is left behind on
# either side.
#
# Namespaces need root: tools/test.sh runs this file as root, starting
# every server as the user postgres (KS_FAULT_USER) with runuser inside its
# namespace.  Run as another user, or where namespaces cannot be made, it
# skips with the reason.  Replication and the test's own sessions use the
# nodes' Unix sockets, which no namespace cuts; forwarded calls go over
# TCP between the namespaces, on addresses that exist only inside them.

use strict;
use warnings FATAL => 'all';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use KsWire;

# The namespaces this test makes, removed however it ends.
my @ns = map { "ks_fault$_" } 1 .. 3;
my $hub = 'ks_fault_hub';
my @made;
my $network = 0;
END
{
	if ($network)
	{
		$_->stop for @made;
		system("ip netns del $_ 2>/dev/null") for @ns, $hub;
	}
}

plan skip_all => 'network namespaces need root (tools/test.sh runs this file as root)'
  if $> != 0;
plan skip_all => 'network namespaces cannot be made here: ' . `ip netns add ks_probe 2>&1`
  if system('ip netns add ks_probe >/dev/null 2>&1') != 0;
system('ip netns del ks_probe');

my $user = $ENV{KS_FAULT_USER} // 'postgres';
# The server under test: PG_CONFIG's, or that of the pg_config in PATH.
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $bindir = `$pg_config --bindir`;
chomp $bindir;
my $calls = $ENV{KS_FAULT_CALLS} // 300;
my $node_timeout_ms = 500;
my $wait_timeout_ms = 900;
my $root = tempdir('kill_session_faults.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $root;
system('chown', $user, $root) == 0 or die;
# The servers' user runs its commands from here, a directory it may enter.
chdir $root or die;

# -- The network: a hub namespace with a bridge, a namespace per node --------

sub run
{
	my ($cmd) = @_;
	system($cmd) == 0 or die "failed: $cmd";
}
$network = 1;
run("ip netns add $hub");
run("ip -n $hub link add ksbr type bridge");
run("ip -n $hub link set ksbr up");
for my $i (1 .. 3)
{
	my $ns = $ns[ $i - 1 ];
	run("ip netns add $ns");
	run("ip -n $ns link set lo up");
	run("ip -n $hub link add ksh$i type veth peer name eth0 netns $ns");
	run("ip -n $hub link set ksh$i master ksbr");
	run("ip -n $hub link set ksh$i up");
	run("ip -n $ns addr add 10.77.0.$i/24 dev eth0");
	run("ip -n $ns link set eth0 up");
}

# Cut node $i's link, or heal it.  A link comes back once the kernel has
# seen its carrier on both ends (linkwatch may take up to a second) and
# the bridge forwards on it again: until then it still drops packets, so
# healing waits for all three.
sub cut { run("ip -n $hub link set ksh$_[0] down"); }
sub heal
{
	my ($i) = @_;
	run("ip -n $hub link set ksh$i up");
	for (1 .. 300)
	{
		last if `ip -n $ns[$i - 1] -o link show eth0` =~ /state UP/
		  && `ip -n $hub -o link show ksh$i` =~ /state UP/
		  && `bridge -n $hub link show dev ksh$i` =~ /state forwarding/;
		usleep(10_000);
	}
	# An address resolution begun during the cut would retry only a second
	# later: start afresh.
	run("ip -n $_ neigh flush all") for @ns;
}

# -- The nodes ---------------------------------------------------------------

package FaultNode {
	sub new
	{
		my ($class, $i) = @_;
		my $self = bless { i => $i, dir => "$root/node$i", sock => "$root/s$i",
			port => 5432 }, $class;
		mkdir $self->{sock};
		chmod 0755, $self->{sock};
		system('chown', $user, $self->{sock}) == 0 or die;
		return $self;
	}
	sub host { return $_[0]->{sock}; }
	sub port { return $_[0]->{port}; }
	sub as_user { my ($self, $cmd) = @_; return "runuser -u $user -- $cmd"; }
	sub start
	{
		my ($self) = @_;
		main::run("ip netns exec $ns[ $self->{i} - 1 ] "
			  . $self->as_user("$bindir/pg_ctl -D $self->{dir} -l $self->{dir}.log -w start >/dev/null"));
		push @made, $self;
	}
	sub stop
	{
		my ($self) = @_;
		system($self->as_user("$bindir/pg_ctl -D $self->{dir} -m immediate -w stop >/dev/null 2>&1"))
		  if -f "$self->{dir}/postmaster.pid";
	}
	sub psql
	{
		my ($self, $sql) = @_;
		my $out = `runuser -u $user -- $bindir/psql -X -Atq -h $self->{sock} -p $self->{port} -d postgres -c "$sql" 2>&1`;
		chomp $out;
		return $out;
	}
}

sub conf
{
	my ($node, $text) = @_;
	open(my $fh, '>>', "$node->{dir}/postgresql.conf") or die;
	print $fh $text;
	close $fh;
}

my @nodes = map { FaultNode->new($_) } 1 .. 3;
my ($n1) = @nodes;
run($n1->as_user("$bindir/initdb -D $n1->{dir} -A trust -U postgres --no-sync >/dev/null"));
conf($n1, qq{
listen_addresses = '10.77.0.1'
unix_socket_directories = '$n1->{sock}'
port = 5432
shared_preload_libraries = 'kill_session'
kill_session.node_id = 1
wal_level = replica
max_wal_senders = 4
fsync = off
});
open(my $hba, '>>', "$n1->{dir}/pg_hba.conf") or die;
print $hba "host all all 10.77.0.0/24 trust\n";
close $hba;
$n1->start;
$n1->psql('CREATE EXTENSION kill_session; CREATE EXTENSION postgres_fdw; CREATE ROLE app LOGIN');
for my $i (2, 3)
{
	my $node = $nodes[ $i - 1 ];
	run($node->as_user("$bindir/pg_basebackup -h $n1->{sock} -p 5432 -U postgres -D $node->{dir} -R -X stream >/dev/null 2>&1"));
	conf($node, qq{
listen_addresses = '10.77.0.$i'
unix_socket_directories = '$node->{sock}'
kill_session.node_id = $i
});
	$node->start;
}
for my $i (1 .. 3)
{
	$n1->psql("CREATE SERVER node$i FOREIGN DATA WRAPPER postgres_fdw "
		  . "OPTIONS (host '10.77.0.$i', port '5432', dbname 'postgres'); "
		  . "CREATE USER MAPPING FOR postgres SERVER node$i; "
		  . "INSERT INTO kill_session_nodes VALUES ($i, 'node$i')");
}
for (1 .. 100)
{
	last if $nodes[2]->psql('SELECT count(*) FROM kill_session_nodes') eq '3';
	usleep(100_000);
}
is($nodes[2]->psql('SELECT count(*) FROM kill_session_nodes'), '3',
	'three nodes, each in its own namespace; the directory reached the standbys');

# Bystanders: sessions of every node that no call names.
my @bystanders = map { KsWire->connect($_, user => 'app') } @nodes, @nodes;

# An observer on each node, over its Unix socket (no cut reaches it): where
# a forwarded call is, seen without starting a process.
my @observers = map { KsWire->connect($_) } @nodes;

# A caller on each node, whose connections to the others are kept.
my @callers = map { KsWire->connect($_) } @nodes;
for my $c (@callers)
{
	$c->query("SET kill_session.node_timeout = '${node_timeout_ms}ms'");
	$c->query("SET kill_session.wait_timeout = '${wait_timeout_ms}ms'");
}
my $caller_pids = join(',', map { $_->pid } @callers);
# The sockets a process holds.
sub sockets
{
	my ($pid) = @_;
	return scalar(grep { (readlink($_) // '') =~ /^socket:/ } glob("/proc/$pid/fd/*"));
}
my %fds_before = map { $_ => sockets($_) } map { $_->pid } @callers;
my $healthy = $nodes[0]->psql('SELECT count(*) FROM cluster_processlist');
like($healthy, qr/^\d+$/, "before any fault, the cluster list works ($healthy sessions)");

# -- The loop ------------------------------------------------------------------

# What a victim's own client saw within $wait seconds: 'ended' (FATAL
# 57P01), 'cancelled' (57014 and then its next statement ran), or 'alive'.
sub victim_saw
{
	my ($v, $action, $wait) = @_;
	my $trace = join(' ', @{ $v->trace($wait) });
	return 'ended' if $trace =~ /E:FATAL:57P01/;
	return 'cancelled' if $action eq 'cancel' && $trace =~ /E:ERROR:57014/;
	return 'alive';
}

my %count;
my @bad;
my $bound = ($node_timeout_ms + $wait_timeout_ms) / 1000 + 1.5;
my $slowest = 0;
for my $k (1 .. $calls)
{
	my $from = int(rand(3));
	my $to = ($from + 1 + int(rand(2))) % 3;
	my $caller = $callers[$from];
	my $action = (qw(kill kill_sessions disconnect cancel))[ int(rand(4)) ];
	my $when = (qw(before_connect kept after_sent))[ int(rand(3)) ];

	my $v = KsWire->connect($nodes[$to], user => 'app');
	my $id = $v->session_id;
	$v->send_query('SELECT pg_sleep(30)') if $action eq 'cancel';
	usleep(50_000) if $action eq 'cancel';
	my $sql = {
		kill => "SELECT kill_session('$id')",
		kill_sessions => "SELECT killed FROM kill_sessions(ARRAY[$id])",
		disconnect => "SELECT disconnect_session('$id')",
		cancel => "SELECT cancel_sql('$id')" }->{$action};

	if ($when eq 'before_connect')
	{
		$caller->query('SELECT kill_session_disconnect_all()');
		cut($to + 1);
	}
	elsif ($when eq 'kept')
	{
		# A call that keeps a connection, then the cut.
		$caller->query('SELECT count(*) FROM cluster_processlist');
		cut($to + 1);
	}
	else
	{
		# The node's action waits for a stopped session, so the call is
		# still running there when the link goes.
		kill 'STOP', $v->pid;
	}
	my $t0 = time();
	$caller->send_query($sql);
	if ($when eq 'after_sent')
	{
		# Once the node runs the call (not its identity check), at a random
		# moment.  A call that fails before it is sent (a lost packet costs
		# a connection more than node_timeout here) is one cut before
		# sending.
		my $running;
		my $until = time() + $bound;
		while (!defined $running && time() < $until)
		{
			$running = $observers[$to]->value(q{SELECT pid FROM pg_stat_activity
				WHERE application_name = 'kill_session' AND state = 'active'
				AND query NOT LIKE '%pg_control_system%'
				ORDER BY query_start DESC LIMIT 1});
			usleep(5_000) unless defined $running;
		}
		usleep(int(rand(300_000)));
		cut($to + 1);
		if (!defined $running)
		{
			$when = 'unsent';
		}
		else
		{
			# The node's call waits for the stopped victim, but a loaded
			# machine can be late to cut: if the call is no longer running
			# once the link is down, its answer may have left before the cut
			# ('answered').  A node sets its session idle before it sends
			# the answer, so a call still running now has its answer lost.
			$when = 'answered' if $observers[$to]->value(qq{SELECT count(*)
				FROM pg_stat_activity WHERE pid = $running AND state = 'active'
				AND query NOT LIKE '%pg_control_system%'}) ne '1';
		}
	}
	my $r = $caller->read_result($bound + 30);
	my $took = time() - $t0;
	$slowest = $took if $took > $slowest;
	heal($to + 1);
	kill 'CONT', $v->pid;

	note("call $k: $r->{error}{M}: " . ($r->{error}{D} // '')) if $r->{error};
	my $answer = $r->{error} ? "error $r->{error}{C}" :
	  defined $r->{rows}[0][0] ? "returned $r->{rows}[0][0]" : 'returned NULL';
	my $warning = join(' ', map { $_->{C} } grep { $_->{V} eq 'WARNING' } @{ $r->{notices} });
	# A victim expected to live is watched for half a second: a kill that
	# reached it would show by then.
	my $saw = victim_saw($v, $action,
		$when =~ /^(after_sent|answered)$/ || $answer eq 'returned t' ? 3 : 0.5);
	$count{"$when $answer, victim $saw"}++;
	my $what = "call $k: $action of node " . ($to + 1) . " from node " . ($from + 1)
	  . ", cut $when: $answer" . ($warning ? " (WARNING $warning)" : '') . ", victim $saw, "
	  . sprintf('%.2fs', $took);
	note($what);
	# (The wait for an unsent call to show on the node is the test's own.)
	push @bad, "$what: too slow" if $took > $bound && $when ne 'unsent';
	if ($answer eq 'returned t')
	{
		push @bad, "$what: true, but the victim was not affected"
		  if $saw ne ($action eq 'cancel' ? 'cancelled' : 'ended');
	}
	elsif ($answer eq 'returned f' && $when eq 'answered')
	{
		# The node's own answer, which reached the caller before the cut:
		# the victim did not end (or stop its statement) within
		# wait_timeout, as the node's WARNING says; it may once resumed.
		push @bad, "$what: false without the node's reason"
		  unless $warning ne '' && $warning !~ /\b08/;
	}
	elsif ($answer eq 'returned f')
	{
		# kill_sessions' row of a node it could not reach, with the
		# node's WARNING; never for a call that was sent and lost.
		push @bad, "$what: false once the call was sent" if $when eq 'after_sent';
		push @bad, "$what: false without its reason, or with the victim touched"
		  unless $warning =~ /^(08001|08006)$/ && $saw eq 'alive';
	}
	elsif ($answer eq 'returned NULL')
	{
		push @bad, "$what: NULL without 08007" unless $warning =~ /08007/;
	}
	elsif ($answer =~ /^error (\w+)/)
	{
		my $code = $1;
		if ($when eq 'after_sent' || $when eq 'answered')
		{
			push @bad, "$what: not 08007 once the call was sent" unless $code eq '08007';
		}
		else
		{
			push @bad, "$what: $code before the call was sent" unless $code =~ /^08001|08006$/;
			push @bad, "$what: the victim was touched though nothing was sent"
			  if $saw ne 'alive';
		}
	}
	$v->close;
}
note("outcomes: " . join(', ', map { "$_: $count{$_}" } sort keys %count));
note("slowest call: ${slowest}s (bound ${bound}s)");
is(scalar(@bad), 0, "$calls faulted calls: every true real, every lost answer 08007, none too slow")
  or diag(join("\n", @bad[ 0 .. ($#bad < 20 ? $#bad : 19) ]));
ok((grep { /^after_sent error 08007/ } keys %count) && (grep { /^before_connect error 08001/ } keys %count),
	'both a lost answer (08007) and a failed connect (08001) were met');

# -- After healing ---------------------------------------------------------------

for my $from (0 .. 2)
{
	my $to = ($from + 1) % 3;
	my $v = KsWire->connect($nodes[$to], user => 'app');
	my $id = $v->session_id;
	is($callers[$from]->value("SELECT kill_session('$id')"), 't',
		'after healing, node ' . ($from + 1) . ' kills on node ' . ($to + 1));
	is(victim_saw($v, 'kill', 5), 'ended', 'and the session ends');
}
is(scalar(grep { $_->value('SELECT 1') ne '1' } @bystanders), 0,
	'no other session was hurt');
for my $c (@callers)
{
	$c->query('SELECT kill_session_disconnect_all()');
}
my %fds_after = map { $_ => sockets($_) } map { $_->pid } @callers;
is_deeply(\%fds_after, \%fds_before,
	'the callers hold no socket more than before the loop');
my $left;
for (1 .. 120)
{
	$left = join(' ', map { $_->psql(q{SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'kill_session'}) } @nodes);
	last if $left eq '0 0 0';
	usleep(500_000);
}
is($left, '0 0 0', 'no forwarding backend is left on any node');
my $resolvers = `ps -o pid= --ppid $caller_pids 2>/dev/null`;
is($resolvers, '', 'no child is left under the callers');
$_->close for @callers, @bystanders, @observers;
done_testing();
