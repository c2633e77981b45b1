-- Wakes the events relay when events are committed: every statement that records events
-- notifies `events_recorded`. PostgreSQL delivers a notification only when its transaction
-- commits (never for a rolled-back change) and sends one per transaction however many
-- statements notified, so a change costs no extra round trip and the relay, listening in
-- the worker or the API (src/modules/events/outbox.ts), queues its events at once instead
-- of at its next poll.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('events_recorded', '');
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER events_notify AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
