/**
 * The Kafka side of a stage unit in a what-if: it makes no topic and holds no transaction; what the
 * unit would have committed (sink outputs, dead letters, its lineage line) is kept here instead, so
 * a what-if never writes to the job's topics.
 */
import type { StageKafka } from "../../activities/stage/unit.js";
import type { OutgoingMessage } from "../../connectors/kafka/client.js";
import type { SinkSession } from "../../connectors/kafka/sink.js";

/** One message a unit would have written. */
export interface CapturedMessage {
  topic: string;
  message: OutgoingMessage;
}

/** Captures each unit's commit in place of a Kafka transaction. */
export class CapturedKafka implements StageKafka {
  private captured: CapturedMessage[] = [];

  /** No topic is made: the what-if writes none. */
  ensureTopic(): Promise<void> {
    return Promise.resolve();
  }

  /** Runs the unit with nothing committed before it; its commit is captured. */
  withSession<T>(_transactionalId: string, _outputTopics: string[], work: (session: SinkSession) => Promise<T>): Promise<T> {
    return work({
      committedUpTo: () => Promise.resolve(0),
      commit: (messages) => {
        this.captured.push(...messages);
        return Promise.resolve();
      },
    });
  }

  /** What the units committed since the last call. */
  take(): CapturedMessage[] {
    const taken = this.captured;
    this.captured = [];
    return taken;
  }
}
