/**
 * Was this message published to `subject`, the one its handler subscribed to? A JetStream push consumer delivers
 * stored messages to whatever deliver subject its creator names, and nats-server 2.9 checks no permission on it
 * (nats-io/nats-server#8274, open): anyone allowed to create a consumer on a stream could have the server deliver
 * what that stream holds (say, JSON it appended to haul.events.<id>) to haul.api.cancel or haul.stream.<node>.offer,
 * past the permissions that keep it from publishing there. Such a delivery keeps the subject it was stored under,
 * so a handler of a core subject answers only messages whose subject is its own.
 */
export const sentTo = (msg: { subject: string }, subject: string): boolean => msg.subject === subject;
