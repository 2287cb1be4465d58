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
import {
  extendChain,
  extendChainWith,
  newChain,
  sealDataOf,
  sealMatches,
  type Chain,
  type SealData,
} from './seal.ts';
import { signatureHeaders, type HeaderReader, type SignatureHeaders } from './signature.ts';
import type { Trust, TrustVerdict } from './trust.ts';

/**
 * A message of the event stream as any reader gets it. `seq` is its stream sequence, which the server assigned: the
 * judge passes it to the signature check, so a retired key vouches only for the events stored up to its `eventsUpTo`.
 */
export type RawEvent = { subject: string; seq: number; data: Uint8Array; headers?: HeaderReader | undefined };

/**
 * A message held by a replay until its migration's seal, decoded when first needed (EventJudge.eventOf): `event` is
 * undefined until then, null once decoding found no valid event.
 */
export type HeldMessage = { raw: RawEvent; event?: MigrationEvent | null };

/** What `sealed` hands on: the events it believed, or the seal alone when its snapshot is taken. */
export type SealedEvents = { seq: number; event: MigrationEvent; snapshot?: true }[];

/** MigrationSealed met in a replay, and its stream sequence. */
export type SealMessage = { raw: RawEvent; event: Extract<MigrationEvent, { type: 'MigrationSealed' }> };

/**
 * What a reader knows of one migration: its facts, learnt from every message of its subject up to `coveredSeq`, and
 * the seal chain (seal.ts) of the messages it believed in order from the log's first, when it has one.
 */
type Known = { facts: MigrationFacts; coveredSeq: number; chain?: Chain };

export type JudgeOptions = {
  /**
   * Keep each migration's seal chain (one SHA-256 update per believed message, an open hash per known migration), so
   * that `sealOf` can answer. Only a process that seals wants it (the coordinator); without it `sealOf` is undefined.
   */
  sealChains?: boolean;
};

/** Migrations whose facts are kept (a reader that meets a forgotten one reads its log back once). */
const maxKnown = 10_000;

/**
 * Events this process appended and has not met again yet, oldest forgotten first. The coordinator's consumer and an
 * agent's follow meet each of theirs again within moments; a process that never reads its own appends back keeps up
 * to this many copies (an event is about 1 KB), and one met after it was forgotten is checked as any message.
 */
const maxMine = 10_000;

/**
 * Messages whose signature this reader found good, the newest kept. One reader meets a message twice within moments:
 * an agent's read before a command and its follow of the same migration both fetch the intents just appended, and a
 * message met alone whose facts are missing is checked before the log is read back and again when judged. A few
 * seconds of a busy coordinator's events.
 */
const maxGood = 2_000;

const dec = new TextDecoder();

const signerOf = (raw: RawEvent): string => raw.headers?.get(signatureHeaders.signer) ?? '';
const signatureOf = (raw: RawEvent): string => raw.headers?.get(signatureHeaders.signature) ?? '';

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
  opts: JudgeOptions = {},
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
  /**
   * Stream sequence → a message whose signature held, as it was checked: its subject, its signature headers, a copy of
   * its bytes, and the verdict. A message met again with all of these the same is that very message, and its verdict
   * is the same: the registry does not change while the process runs, and the verdict depends on nothing else (a
   * retired key's, on the sequence, which is the key). Anything different is checked as any message. bench:control
   * (200 migrations): the executors' checks of events went from 22,215 to 19,328 (docs/decisions.md 20).
   */
  const good = new Map<
    number,
    { subject: string; signer: string; signature: string; body: Buffer; verdict: TrustVerdict }
  >();

  /** trust.verify, once per message met (good). */
  function verified(raw: RawEvent): TrustVerdict {
    const g = good.get(raw.seq);
    if (
      g &&
      g.subject === raw.subject &&
      g.signer === signerOf(raw) &&
      g.signature === signatureOf(raw) &&
      g.body.equals(raw.data)
    )
      return g.verdict;
    return keep(raw, trust.verify(raw.subject, raw.data, raw.headers, raw.seq));
  }

  /** A verdict on `raw`, kept in `good` when its signature held. */
  function keep(raw: RawEvent, verdict: TrustVerdict): TrustVerdict {
    if (!verdict.ok) return verdict;
    good.delete(raw.seq);
    good.set(raw.seq, {
      subject: raw.subject,
      signer: signerOf(raw),
      signature: signatureOf(raw),
      body: Buffer.from(raw.data),
      verdict,
    });
    if (good.size > maxGood) good.delete(good.keys().next().value!);
    return verdict;
  }

  /**
   * What is known of `mid`. It only grows: reads of one migration overlap (a whole read that began before an append
   * may end after it), and facts learnt from the authentic log stay true whoever learnt them first. A read that starts
   * again from the log's first message learns nothing new from what is known, and forgets nothing either.
   */
  function entry(mid: string): Known {
    let k = known.get(mid);
    if (k) {
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

  /** The message's event, if it is one (JSON, valid); else undefined, and `onInvalid` hears why. */
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

  function eventOf(m: HeldMessage): MigrationEvent | undefined {
    if (m.event === undefined) m.event = decode(m.raw) ?? null;
    return m.event ?? undefined;
  }

  /**
   * Judge one message against the facts known so far; learn from it when it is believed. `inOrder`: the message
   * follows the ones this reader judged before it (a read, a consumer's delivery), so a believed one extends the
   * migration's seal chain. `vouched`: a believed seal covers it, so its signer is taken from its header unchecked.
   * `checked`: its signature's verdict, when the caller had it checked already (trust.verifyAsync).
   */
  function judge(
    raw: RawEvent,
    e: MigrationEvent,
    k: Known,
    inOrder: boolean,
    vouched = false,
    checked?: TrustVerdict,
  ): boolean {
    const claimed = `${e.actor.service}@${e.actor.node}`;
    const refuse = (reason: string, who = claimed): false => {
      trust.reject({ kind: 'event', subject: raw.subject, seq: raw.seq, claimed: who, reason });
      return false;
    };
    if (raw.subject !== subjects.events(e.migrationId))
      return refuse(`an event of ${e.migrationId} on another migration's subject`);
    if (!trust.secure) return true;
    const v =
      checked ??
      (vouched
        ? trust.claimed(raw.headers, raw.seq)
        : trust.identity && signedHere(raw, e)
          ? keep(raw, { ok: true, identity: trust.identity })
          : verified(raw));
    if (!v.ok) return refuse(v.reason, v.claimed ?? claimed);
    const a = authorizeEvent(v.identity!, e, raw.seq, k.facts);
    if (!a.ok) return refuse(`${e.type}: ${a.reason}`, v.identity!.name);
    learn(k.facts, raw.seq, e);
    if (inOrder) chain(k, raw, e);
    return true;
  }

  /**
   * Extend the migration's seal chain by a believed message met in order. A chain starts at the log's first event,
   * MigrationRequested; a message at or before the chain's end is one met again (a redelivery). A message missed in
   * between makes a chain no reader's will equal: its seal then spares nobody any work, and changes nothing else.
   */
  function chain(k: Known, raw: RawEvent, e: MigrationEvent): void {
    if (!opts.sealChains) return;
    if (!k.chain) {
      if (e.type !== 'MigrationRequested') return;
      k.chain = newChain();
    }
    if (raw.seq > k.chain.seq) extendChain(k.chain, raw.seq, raw.headers, raw.data);
  }

  /**
   * Judge the messages of one migration read in order together with the seal that follows them: when the seal is
   * believed and names exactly these messages (seal.ts), each is judged on the signer its header names; else
   * each signature is checked. The seal itself last.
   *
   * `snapshot`: when the seal vouches for exactly these messages, each is signed by a key this reader's registry
   * accepts at its sequence (trust.claimed: no unknown key, no key retired before it), and this accepts its status
   * snapshot (the caller can use it instead of the events), the seal alone is handed on, marked `snapshot`: the
   * messages are not decoded, and who may write what is not checked again. The snapshot is the coordinator's word
   * on what they fold to, as its terminal event is its word that the migration ended.
   */
  function sealed(
    messages: readonly HeldMessage[],
    seal: SealMessage,
    snapshot?: (seal: SealMessage) => boolean,
    /** The seal's signature checked already (checkSeal). */
    checked?: TrustVerdict,
  ): SealedEvents {
    const k = entry(seal.event.migrationId);
    const sealBelieved = judge(seal.raw, seal.event, k, false, false, checked);
    const vouched = sealBelieved && sealMatches(seal.event.data, chainOf(messages));
    const signersKnown = () => messages.every((m) => trust.claimed(m.raw.headers, m.raw.seq).ok);
    if (vouched && snapshot && signersKnown() && snapshot(seal))
      return [{ seq: seal.raw.seq, event: seal.event, snapshot: true }];
    const out: SealedEvents = [];
    for (const m of messages) {
      const event = eventOf(m);
      if (event && judge(m.raw, event, k, false, vouched)) out.push({ seq: m.raw.seq, event });
    }
    if (sealBelieved) out.push({ seq: seal.raw.seq, event: seal.event });
    return out;
  }

  /**
   * A seal met as the last message of its subject, its log not read (EventLog.replaySeals): handed on alone, marked
   * `snapshot`, as `sealed` hands on a snapshot, when it is believed (`checked`: checkSeal's verdict; its authority
   * judged here), the stream still holds every message it vouches for (its first sequence at most the seal's
   * `fromSeq`) and the subject exactly those and the seal (`stored`: the subject's message count, taken once the
   * seal was the subject's last), this reader's registry believes every signer it names up to its `upToSeq` (so at
   * each message's sequence), and `snapshot` accepts it. Else undefined: read and judge the log. Never when insecure:
   * no coordinator seals then, so a seal is nobody's word.
   *
   * What stands in for reading the log (`sealed` compares its own chain with the seal's digest): the seal's word on
   * which messages it vouches for and who signed them, and the count. A message the coordinator did not believe (a
   * forgery it skipped), one after the terminal event or a copy of the seal makes the count differ; messages aged out
   * of the stream make its first sequence pass `fromSeq`. A signer this reader does not believe is named.
   */
  function sealAlone(
    seal: SealMessage,
    stream: { stored: number; firstSeq: number },
    snapshot: (seal: SealMessage) => boolean,
    checked: TrustVerdict,
  ): SealedEvents[number] | undefined {
    const { signers, fromSeq, events, upToSeq } = seal.event.data;
    if (!trust.secure || !signers || fromSeq === undefined) return undefined;
    if (stream.stored !== events + 1 || stream.firstSeq > fromSeq || upToSeq >= seal.raw.seq)
      return undefined;
    if (!signers.every((s) => trust.signerBelieved(s, upToSeq).ok)) return undefined;
    if (!judge(seal.raw, seal.event, entry(seal.event.migrationId), false, false, checked)) return undefined;
    return snapshot(seal) ? { seq: seal.raw.seq, event: seal.event, snapshot: true } : undefined;
  }

  return {
    /**
     * Judge the messages of one migration read in order from `fromSeq` (exclusive). `fromSeq` must be 0 (the whole
     * log) or at most what `coveredFrom` returned: nothing in between is missed.
     */
    inOrder(
      mid: string,
      fromSeq: number,
      raws: readonly RawEvent[],
    ): { seq: number; event: MigrationEvent }[] {
      const k = entry(mid);
      // A chain that ends before this read starts is not extended by it (what lies between would be missing): the
      // consumer's deliveries extend it in order.
      const extend = !k.chain || fromSeq <= k.chain.seq;
      const out: { seq: number; event: MigrationEvent }[] = [];
      for (const raw of raws) {
        const e = decode(raw);
        if (e && judge(raw, e, k, extend)) out.push({ seq: raw.seq, event: e });
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
        verified(raw).ok;
      if (worthFacts) await readBack(e.migrationId, k.coveredSeq);
      return judge(raw, e, entry(e.migrationId), true) ? { seq: raw.seq, event: e } : undefined;
    },
    /** A held message's event, decoded on first use (undefined: not a valid event; `onInvalid` heard why, once). */
    eventOf,
    sealed,
    sealAlone,
    /**
     * The seal's signature checked on libuv's thread pool (trust.verifyAsync), for `sealed` to take as its verdict: a
     * replay keeps reading while the seals it met are checked, and judges them in the order they came.
     */
    checkSeal(seal: SealMessage): Promise<TrustVerdict> {
      const { subject, data, headers, seq } = seal.raw;
      return trust.verifyAsync(subject, data, headers, seq);
    },
    /** The seal this reader can write for `mid`: its chain, if it keeps chains and has one for `mid`. */
    sealOf(mid: string): SealData | undefined {
      const c = known.get(mid)?.chain;
      return c && sealDataOf(c);
    },
    /**
     * Judge a coordinator's event met alone, without the facts of the events before it (a coordinator's events are
     * believed on its signature alone): undefined for any other event, one not of `types`, or one not believed.
     */
    factFree(raw: RawEvent, types?: ReadonlySet<string>): { seq: number; event: MigrationEvent } | undefined {
      const e = decode(raw);
      if (!e || !isCoordinatorEvent(e) || (types && !types.has(e.type))) return undefined;
      return judge(raw, e, entry(e.migrationId), false) ? { seq: raw.seq, event: e } : undefined;
    },
    /**
     * An event this process appended itself at `seq`: learn from it. `expectedLastSeq`: the append was a compare-and-
     * set on it, so nothing lies between it and `seq`; when the facts cover it now (not when the append began: the
     * entry may have been forgotten since), they cover `seq` too.
     */
    appended(seq: number, e: MigrationEvent, expectedLastSeq: number | undefined): void {
      if (!trust.secure) return;
      const k = entry(e.migrationId);
      learn(k.facts, seq, e);
      if (expectedLastSeq === undefined || k.coveredSeq < expectedLastSeq) return;
      // Its copy stays in `mine` although the facts cover it now: the coordinator's consumer delivers every event it
      // appended, most often after the append's ack. Dropped here, each of those was checked again (bench:control,
      // 300 migrations: as many signature checks as events, 1.6 of the coordinator's 17.6 CPU-s).
      k.coveredSeq = Math.max(k.coveredSeq, seq);
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
    /**
     * A follow of `mid`'s subject alone judged its message at `seq` (single), and the one before it on that subject was
     * at `prevSeq`: when every message up to `prevSeq` was judged already, every one up to `seq` is now, so a read
     * that follows asks only for what comes after. A follow that started past what was judged, or an entry forgotten
     * meanwhile, covers nothing.
     */
    followed(mid: string, prevSeq: number, seq: number): void {
      const k = known.get(mid);
      if (k && k.coveredSeq >= prevSeq) k.coveredSeq = Math.max(k.coveredSeq, seq);
    },
    /** The sequence up to which this reader has judged every message of `mid`. */
    covered: (mid: string): number => known.get(mid)?.coveredSeq ?? 0,
  };
}

export type EventJudge = ReturnType<typeof createEventJudge>;

/** The chain of every message read, believed or not, as a reader folds it to compare with a seal (seal.ts). */
function chainOf(messages: readonly { raw: RawEvent }[]): Chain {
  const c = newChain();
  extendChainWith(
    c,
    messages.map((m) => m.raw),
  );
  return c;
}
