// The stateful bench's job in Kafka Streams: per service, a 10 s tumbling event-time count and a 30 s
// window sliding every 10 s with count/sum/min/max of latency, each emitted once and final.
package sage.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.Suppressed.BufferConfig;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Usage: StatefulStreams BROKERS INPUT TUMBLING_TOPIC SLIDING_TOPIC APP_ID STATE_DIR [COMMIT_INTERVAL_MS]
 *
 * <p>COMMIT_INTERVAL_MS is the transaction commit interval (exactly_once_v2 defaults to 100 ms; the
 * bench passes Flink's checkpoint interval, so both commit as often).
 *
 * <p>Prints "FIRST_INPUT <epoch ms>" when the first input record is processed and "STATE <state>"
 * on each state change, so the runner can time the job without its start-up.
 */
public final class StatefulStreams {
  static final String FLUSH = "__flush";
  static final Duration BOUND = Duration.ofSeconds(5);
  static final ObjectMapper JSON = new ObjectMapper();
  static final AtomicBoolean STARTED = new AtomicBoolean();

  private StatefulStreams() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 6 && args.length != 7) {
      System.err.println("usage: StatefulStreams BROKERS INPUT TUMBLING_TOPIC SLIDING_TOPIC APP_ID STATE_DIR [COMMIT_INTERVAL_MS]");
      System.exit(2);
    }
    Topology topology = topology(args[1], args[2], args[3]);
    Properties config = config(args[0], args[4], args[5]);
    if (args.length == 7) config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(args[6]));
    KafkaStreams streams = new KafkaStreams(topology, config);
    CountDownLatch closed = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println("STATE " + now);
      System.out.flush();
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) closed.countDown();
    });
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(20))));
    streams.start();
    closed.await();
    System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
  }

  static Properties config(String brokers, String appId, String stateDir) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    // One broker: internal topics (changelogs) with one replica.
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    return p;
  }

  static Topology topology(String input, String tumblingTopic, String slidingTopic) {
    StreamsBuilder builder = new StreamsBuilder();
    // Key = service, record timestamp = event time (the default extractor), so no repartition.
    KGroupedStream<String, Long> latency = builder
        .stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .mapValues(StatefulStreams::latencyOf)
        .groupByKey(Grouped.with(Serdes.String(), Serdes.Long()));

    // Explicit store serdes: without them suppress() fails with a ClassCastException.
    latency
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), BOUND))
        .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("tumbling-counts")
            .withKeySerde(Serdes.String())
            .withValueSerde(Serdes.Long()))
        .suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()))
        .toStream()
        .filter((window, count) -> !FLUSH.equals(window.key()))
        .map((window, count) -> KeyValue.pair(window.key(), String.format(
            "{\"service\":\"%s\",\"start\":%d,\"end\":%d,\"count\":%d}",
            window.key(), window.window().start(), window.window().end(), count)))
        .to(tumblingTopic, Produced.with(Serdes.String(), Serdes.String()));

    latency
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(30), BOUND).advanceBy(Duration.ofSeconds(10)))
        .aggregate(() -> Stats.EMPTY, (service, value, stats) -> stats.add(value),
            Materialized.<String, Stats, WindowStore<Bytes, byte[]>>as("sliding-stats")
                .withKeySerde(Serdes.String())
                .withValueSerde(Stats.SERDE))
        .suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()))
        .toStream()
        .filter((window, stats) -> !FLUSH.equals(window.key()))
        .map((window, s) -> KeyValue.pair(window.key(), String.format(
            "{\"service\":\"%s\",\"start\":%d,\"end\":%d,\"count\":%d,\"sum\":%d,\"min\":%d,\"max\":%d}",
            window.key(), window.window().start(), window.window().end(), s.count, s.sum, s.min, s.max)))
        .to(slidingTopic, Produced.with(Serdes.String(), Serdes.String()));
    return builder.build();
  }

  static Long latencyOf(String json) {
    if (!STARTED.getAndSet(true)) {
      System.out.println("FIRST_INPUT " + System.currentTimeMillis());
      System.out.flush();
    }
    try {
      return JSON.readTree(json).get("latency").asLong();
    } catch (Exception e) {
      throw new IllegalArgumentException("not an event: " + json, e);
    }
  }

  /** Count, sum, min and max of latency; immutable, 32 bytes in the store. */
  static final class Stats {
    static final Stats EMPTY = new Stats(0, 0, Long.MAX_VALUE, Long.MIN_VALUE);
    static final Serde<Stats> SERDE = Serdes.serdeFrom(
        (Serializer<Stats>) (topic, s) -> s == null ? null : ByteBuffer.allocate(32).putLong(s.count).putLong(s.sum).putLong(s.min).putLong(s.max).array(),
        (Deserializer<Stats>) (topic, bytes) -> {
          if (bytes == null) return null;
          ByteBuffer b = ByteBuffer.wrap(bytes);
          return new Stats(b.getLong(), b.getLong(), b.getLong(), b.getLong());
        });

    final long count;
    final long sum;
    final long min;
    final long max;

    Stats(long count, long sum, long min, long max) {
      this.count = count;
      this.sum = sum;
      this.min = min;
      this.max = max;
    }

    Stats add(long latency) {
      return new Stats(count + 1, sum + latency, Math.min(min, latency), Math.max(max, latency));
    }
  }
}
