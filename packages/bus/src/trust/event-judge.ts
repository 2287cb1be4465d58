import type { MigrationEvent, Validators } from '@haul/schemas';
import { subjects } from '../conventions.ts';
import {
  authorizeEvent,
  isCoordinatorEvent,
  learn,
  needsFacts,
  newFacts,
  type MigrationFacts,
} from './authority.ts';
import { signatureHeaders, type HeaderReader, type SignatureHeaders } from './signature.ts';
import type { Trust } from './trust.ts';

/**
 * A message of the event stream as any reader gets it. `seq` is its stream sequence, which the server assigned: the
 * judge passes it to the signature check, so a retired key vouches only for the events stored up to its `eventsUpTo`.
 */
export type RawEvent = { subject: string; seq: number; data: Uint8Array; headers?: HeaderReader | undefined };

/** What a reader knows of one migration: its facts, learnt from every message of its subject up to `coveredSeq`. */
type Known = { facts: MigrationFacts; coveredSeq: number };

/** Migrations whose facts are kept (a reader that meets a forgotten one reads its log back once). */
const maxKnown = 10_000;

/** Events this process appended and has not met again yet (oldest forgotten first). */
const maxMine = 10_000;

const dec = new TextDecoder();

/**
 * The one judge of the event log: every reader of packages/bus (read, follow, the coordinator's consumer) passes each
 * message through it, so a message that is not JSON, not a valid event, not on its migration's subject, not signed
 * by a registered identity (its current key, or a retired key for an event stored up to the sequence it was retired
 * at), or signed by one that may not have written it, is skipped everywhere: the log as the services read it is the
 * authentic log. The forgery stays in the stream (deleting needs the admin), is reported once and changes nothing.
 * Facts (who a command was addressed to) come from the authentic events judged before it.
 */
export function createEventJudge(
  trust: Trust,
  validators: Validators,
  onInvalid: (seq: number, message: string) => void,
) {
  const known = new Map<string, Known>();
  /**
   * Event id → the exact bytes and signature headers of an event this process is appending, signed by itself. A
   * message with those bytes and that signature (Haul-Signer this process's key, Haul-Signature the very signature
   * it made: Ed25519 is deterministic) is the one this process signed, so checking the signature again proves
   * nothing new, and an Ed25519 check is most of a coordinator's CPU per event (bench:control). An unsigned or
   * otherwise signed copy of the same bytes is judged as any message. Registered before the publish (the consumer
   * may deliver the event before its ack comes back); authorization and facts are judged as for any message.
   */
  const mine = new Map<string, { body: Uint8Array; signature: SignatureHeaders }>();

  function entry(mid: string, fresh = false): Known {
    let k = known.get(mid);
    if (k && !fresh) {
      known.delete(mid); // most recently used last
      known.set(mid, k);
      return k;
    }
    k = { facts: newFacts(), coveredSeq: 0 };
    known.set(mid, k);
    if (known.size > maxKnown) known.delete(known.keys().next().value!);
    return k;
  }

  function signedHere(raw: RawEvent, e: MigrationEvent): boolean {
    const m = mine.get(e.eventId);
    if (
      !m ||
      raw.headers?.get(signatureHeaders.signer) !== m.signature[signatureHeaders.signer] ||
      raw.headers.get(signatureHeaders.signature) !== m.signature[signatureHeaders.signature] ||
      !Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength).equals(raw.data)
    )
      return false;
    mine.delete(e.eventId);
    return true;
  }

  function decode(raw: RawEvent): MigrationEvent | undefined {
    let parsed: unknown;
    try {
      parsed = JSON.parse(dec.decode(raw.data));
    } catch {
      onInvalid(raw.seq, 'not JSON');
      return undefined;
    }
    const v = validators.validate<MigrationEvent>('event', parsed);
    if (!v.ok) {
      onInvalid(raw.seq, v.error.message);
      return undefined;
    }
    return v.value;
  }

  /** Judge one message against the facts known so far; learn from it when it is believed. */
  function judge(raw: RawEvent, e: MigrationEvent, k: Known): boolean {
    const claimed = `${e.actor.service}@${e.actor.node}`;
    const refuse = (reason: string, who = claimed): false => {
      trust.reject({ kind: 'event', subject: raw.subject, seq: raw.seq, claimed: who, reason });
      return false;
    };
    if (raw.subject !== subjects.events(e.migrationId))
      return refuse(`an event of ${e.migrationId} on another migration's subject`);
    if (!trust.secure) return true;
    const v =
      trust.identity && signedHere(raw, e)
        ? { ok: true as const, identity: trust.identity }
        : trust.verify(raw.subject, raw.data, raw.headers, raw.seq);
    if (!v.ok) return refuse(v.reason, v.claimed ?? claimed);
    const a = authorizeEvent(v.identity!, e, raw.seq, k.facts);
    if (!a.ok) return refuse(`${e.type}: ${a.reason}`, v.identity!.name);
    learn(k.facts, raw.seq, e);
    return true;
  }

  return {
    /**
     * Judge the messages of one migration read in order from `fromSeq` (exclusive). `fromSeq` must be 0 (the whole
     * log: facts start afresh) or at most what `coveredFrom` returned: nothing in between is missed.
     */
    inOrder(
      mid: string,
      fromSeq: number,
      raws: readonly RawEvent[],
    ): { seq: number; event: MigrationEvent }[] {
      const k = entry(mid, fromSeq === 0);
      const out: { seq: number; event: MigrationEvent }[] = [];
      for (const raw of raws) {
        const e = decode(raw);
        if (e && judge(raw, e, k)) out.push({ seq: raw.seq, event: e });
        k.coveredSeq = Math.max(k.coveredSeq, raw.seq);
      }
      return out;
    },
    /** Where a read of `mid` that wants what follows `afterSeq` must start so that the facts miss nothing. */
    coveredFrom(mid: string, afterSeq: number): number {
      if (!trust.secure) return afterSeq;
      return Math.min(afterSeq, known.get(mid)?.coveredSeq ?? 0);
    },
    /**
     * Judge one message met alone (a consumer's delivery, a follower). When deciding needs facts this reader has
     * not learnt yet (a command another coordinator intended, a reader that joined late), `readBack` reads the
     * migration's log up to it first.
     */
    async single(
      raw: RawEvent,
      readBack: (mid: string, afterSeq: number) => Promise<void>,
      /** The message's event, when the caller decoded and validated it already. */
      decoded?: MigrationEvent,
    ): Promise<{ seq: number; event: MigrationEvent } | undefined> {
      const e = decoded ?? decode(raw);
      if (!e) return undefined;
      const k = entry(e.migrationId);
      // Only a message whose signature holds is worth reading the log back for (a forger cannot make readers read).
      const worthFacts =
        trust.secure &&
        needsFacts(e, k.facts) &&
        k.coveredSeq < raw.seq &&
        raw.subject === subjects.events(e.migrationId) &&
        trust.verify(raw.subject, raw.data, raw.headers, raw.seq).ok;
      if (worthFacts) await readBack(e.migrationId, k.coveredSeq);
      return judge(raw, e, entry(e.migrationId)) ? { seq: raw.seq, event: e } : undefined;
    },
    /**
     * Judge a coordinator's event met alone, without the facts of the events before it (a coordinator's events are
     * believed on its signature alone): undefined for any other event, one not of `types`, or one not believed.
     */
    factFree(raw: RawEvent, types?: ReadonlySet<string>): { seq: number; event: MigrationEvent } | undefined {
      const e = decode(raw);
      if (!e || !isCoordinatorEvent(e) || (types && !types.has(e.type))) return undefined;
      return judge(raw, e, entry(e.migrationId)) ? { seq: raw.seq, event: e } : undefined;
    },
    /** An event this process appended itself: learn from it; `contiguous` when it followed the covered sequence. */
    appended(seq: number, e: MigrationEvent, contiguous: boolean): void {
      if (!trust.secure) return;
      const k = entry(e.migrationId);
      learn(k.facts, seq, e);
      if (!contiguous) return;
      k.coveredSeq = Math.max(k.coveredSeq, seq);
      // Covered: no read of this process judges that message again, so its copy is not kept for one.
      mine.delete(e.eventId);
    },
    /** This process is about to append `e` as exactly `body`, with the signature it made itself. */
    signing(e: MigrationEvent, body: Uint8Array, signature: SignatureHeaders | undefined): void {
      if (!trust.secure || !trust.identity || !signature) return;
      mine.set(e.eventId, { body, signature });
      if (mine.size > maxMine) mine.delete(mine.keys().next().value!);
    },
    /** The append of `e` failed: no copy of it is coming. */
    notSigning(e: MigrationEvent): void {
      mine.delete(e.eventId);
    },
    /** The sequence up to which this reader has judged every message of `mid`. */
    covered: (mid: string): number => known.get(mid)?.coveredSeq ?? 0,
  };
}

export type EventJudge = ReturnType<typeof createEventJudge>;
