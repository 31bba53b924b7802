CREATE EXTENSION kill_session;

-- Reports what a call gives a user: 'ok' or the SQLSTATE and message.
CREATE FUNCTION try_kill(s text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kill_session(s);
    RETURN 'ok';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
