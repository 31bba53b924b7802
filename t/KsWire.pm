# A minimal PostgreSQL wire-protocol client for the kill_session TAP tests.
#
# psql waits for each result before it sends the next statement; these
# tests also need a client that queues statements, that reads what the
# server sends while the client says nothing, and that sees each message
# (result, ReadyForQuery, FATAL) as it arrives.  Simple query protocol over
# the node's Unix socket, trust authentication.

package KsWire;

use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use Time::HiRes qw(time);

# KsWire->connect($node, user => 'u', dbname => 'postgres',
#                 tcp => 1, port => 6432, options => '-c x=y', nowait => 1)
sub connect
{
	my ($class, $node, %opt) = @_;
	my $user = $opt{user} // 'postgres';
	my $db = $opt{dbname} // 'postgres';
	my $sock;
	if ($opt{tcp})
	{
		$sock = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $opt{port} // $node->port,
			Proto => 'tcp') or die "cannot connect to 127.0.0.1: $!";
	}
	else
	{
		my $path = $node->host . '/.s.PGSQL.' . $node->port;
		$sock = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path)
		  or die "cannot connect to $path: $!";
	}
	my $self = bless { sock => $sock, buf => '' }, $class;

	my $params = "user\0$user\0database\0$db\0application_name\0kswire\0";
	$params .= "options\0$opt{options}\0" if defined $opt{options};
	$params .= "\0";
	$self->_write(pack('N', 8 + length($params)) . pack('N', 196608) . $params);
	return $self if $opt{nowait};
	$self->wait_ready;
	return $self;
}

# Finish the connection's start: read up to its first ReadyForQuery.
sub wait_ready
{
	my ($self) = @_;
	for (;;)
	{
		my $m = $self->read_message(30) // die "no answer to startup";
		die "connection refused: " . ($m->{fields}{M} // '?')
		  if $m->{type} eq 'E';
		$self->{pid} = unpack('N', $m->{body}) if $m->{type} eq 'K';
		last if $m->{type} eq 'Z';
	}
}

sub pid { return $_[0]->{pid}; }

sub _write
{
	my ($self, $data) = @_;
	my $off = 0;
	while ($off < length($data))
	{
		my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
		die "write failed: $!" unless defined $n;
		$off += $n;
	}
}

# Send one Query message without waiting for anything.
sub send_query
{
	my ($self, $sql) = @_;
	$self->send_msg('Q', "$sql\0");
	$self->_push;
}

# Read the next message within $timeout seconds: { type, body, fields } for
# errors and notices, or undef on timeout; { type => 'EOF' } once the
# server has closed the connection.
sub read_message
{
	my ($self, $timeout) = @_;
	my $deadline = time() + $timeout;
	for (;;)
	{
		if (length($self->{buf}) >= 5)
		{
			my ($type, $len) = unpack('a N', $self->{buf});
			if (length($self->{buf}) >= 1 + $len)
			{
				my $body = substr($self->{buf}, 5, $len - 4);
				substr($self->{buf}, 0, 1 + $len) = '';
				my %m = (type => $type, body => $body);
				if ($type eq 'E' || $type eq 'N')
				{
					my %f;
					for my $field (split /\0/, $body)
					{
						$f{ substr($field, 0, 1) } = substr($field, 1)
						  if length $field;
					}
					$m{fields} = \%f;
				}
				return \%m;
			}
		}
		return { type => 'EOF' } if $self->{eof};
		my $left = $deadline - time();
		return undef if $left <= 0;
		my $sel = IO::Select->new($self->{sock});
		next unless $sel->can_read($left);
		my $n = sysread($self->{sock}, my $chunk, 65536);
		if (!$n)
		{
			$self->{eof} = 1;
			next;
		}
		$self->{buf} .= $chunk;
	}
}

# Run one statement and collect its result: { rows => [[...]], error =>
# {fields}, tag }.  Waits for ReadyForQuery (or the connection's end).
sub query
{
	my ($self, $sql, $timeout) = @_;
	$self->send_query($sql);
	return $self->read_result($timeout // 60);
}

sub read_result
{
	my ($self, $timeout) = @_;
	my %r = (rows => [], notices => []);
	for (;;)
	{
		my $m = $self->read_message($timeout);
		die "timed out waiting for a result" unless defined $m;
		if ($m->{type} eq 'D') { push @{ $r{rows} }, _row($m->{body}); }
		elsif ($m->{type} eq 'C') { ($r{tag} = $m->{body}) =~ s/\0$//; }
		elsif ($m->{type} eq 'E') { $r{error} = $m->{fields}; }
		elsif ($m->{type} eq 'N') { push @{ $r{notices} }, $m->{fields}; }
		elsif ($m->{type} eq 'Z') { return \%r; }
		elsif ($m->{type} eq 'EOF') { $r{eof} = 1; return \%r; }
	}
}

# The first column of the first row of a statement that must succeed.
sub value
{
	my ($self, $sql) = @_;
	my $r = $self->query($sql);
	die "query failed: $sql: $r->{error}{M}" if $r->{error};
	die "query ended the connection: $sql" if $r->{eof};
	return $r->{rows}[0][0];
}

# This session's client session ID.
sub session_id
{
	my ($self) = @_;
	return $self->value(
		'SELECT id FROM processlist WHERE pid = pg_backend_pid()');
}

# -- Extended protocol and fastpath, one message at a time ---------------

# Messages are kept until Sync, Flush or the next read, and then written
# at once, as a pipelining driver writes them.
sub send_msg
{
	my ($self, $type, $body) = @_;
	$self->{out} .= $type . pack('N', 4 + length($body)) . $body;
}

sub _push
{
	my ($self) = @_;
	return unless length($self->{out} // '');
	# The server may close the connection while a pipeline is written.
	local $SIG{PIPE} = 'IGNORE';
	my $data = delete $self->{out};
	my $off = 0;
	while ($off < length($data))
	{
		my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
		last unless defined $n;
		$off += $n;
	}
}

# Parse: statement name and text, no parameter types.
sub parse
{
	my ($self, $name, $sql) = @_;
	$self->send_msg('P', "$name\0$sql\0" . pack('n', 0));
}

# Bind: portal, statement, text parameters; text results.
sub bind
{
	my ($self, $portal, $stmt, @params) = @_;
	my $body = "$portal\0$stmt\0" . pack('n', 0) . pack('n', scalar @params);
	$body .= defined $_ ? pack('N', length $_) . $_ : pack('N', 0xFFFFFFFF)
	  for @params;
	$self->send_msg('B', $body . pack('n', 0));
}

sub describe_portal { $_[0]->send_msg('D', "P$_[1]\0"); }
sub execute { $_[0]->send_msg('E', "$_[1]\0" . pack('N', $_[2] // 0)); }
sub sync { $_[0]->send_msg('S', ''); $_[0]->_push; }
sub flush { $_[0]->send_msg('H', ''); $_[0]->_push; }

# Fastpath function call with text arguments and a text result.
sub function_call
{
	my ($self, $oid, @args) = @_;
	my $body = pack('N', $oid) . pack('n', 0) . pack('n', scalar @args);
	$body .= pack('N', length $_) . $_ for @args;
	$self->send_msg('F', $body . pack('n', 0));
}

# What the server sends, in order, until it closes the connection, sends
# ReadyForQuery, or says nothing for $timeout seconds: one string per
# message, 'D:value,...' for rows, 'C:tag', 'E:severity:SQLSTATE', 'V:result',
# 'Z', 'EOF', 'TIMEOUT'; other messages by their type letter.  With
# through_z => 1 it reads on past ReadyForQuery.
sub trace
{
	my ($self, $timeout, %opt) = @_;
	my @seen;
	$self->_push;
	for (;;)
	{
		my $m = $self->read_message($timeout);
		if (!defined $m) { push @seen, 'TIMEOUT'; last; }
		my $t = $m->{type};
		if ($t eq 'D')
		{
			push @seen, 'D:' . join(',', map { $_ // 'NULL' } @{ _row($m->{body}) });
		}
		elsif ($t eq 'C') { (my $tag = $m->{body}) =~ s/\0$//; push @seen, "C:$tag"; }
		elsif ($t eq 'E')
		{
			push @seen, "E:$m->{fields}{V}:$m->{fields}{C}";
			$self->{last_error} = $m->{fields};
		}
		elsif ($t eq 'V')
		{
			my $len = unpack('N', $m->{body});
			push @seen, 'V:' . ($len == 0xFFFFFFFF ? 'NULL' : substr($m->{body}, 4, $len));
		}
		elsif ($t eq 'N' || $t eq 'S') { next; }
		else { push @seen, $t; }
		last if $t eq 'EOF' || ($t eq 'Z' && !$opt{through_z});
	}
	return \@seen;
}

sub last_error { return $_[0]->{last_error}; }

sub _row
{
	my ($body) = @_;
	my $n = unpack('n', $body);
	my $pos = 2;
	my @row;
	for (1 .. $n)
	{
		my $len = unpack('N', substr($body, $pos, 4));
		$pos += 4;
		if ($len == 0xFFFFFFFF) { push @row, undef; next; }
		push @row, substr($body, $pos, $len);
		$pos += $len;
	}
	return \@row;
}

sub close
{
	my ($self) = @_;
	# The server may have closed the connection already.
	local $SIG{PIPE} = 'IGNORE';
	syswrite($self->{sock}, 'X' . pack('N', 4)) unless $self->{eof};
	close($self->{sock});
}

1;
