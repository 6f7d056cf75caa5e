// The stateful bench's job in Apache Flink (local MiniCluster): per service, a 10 s tumbling event-time
// count and a 30 s window sliding every 10 s with count/sum/min/max of latency, exactly once to Kafka.
package sage.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Usage: StatefulFlink BROKERS INPUT TUMBLING_TOPIC SLIDING_TOPIC APP_ID CHECKPOINT_DIR [CHECKPOINT_INTERVAL_MS]
 *
 * <p>CHECKPOINT_INTERVAL_MS defaults to 1000; the sink commits its transactions at each checkpoint.
 *
 * <p>Prints "FIRST_INPUT <epoch ms>" when the first input record is read (the MiniCluster runs in
 * this JVM, so one flag serves every subtask), so the runner can time the job without its start-up.
 */
public final class StatefulFlink {
  static final String FLUSH = "__flush";
  static final AtomicBoolean STARTED = new AtomicBoolean();

  private StatefulFlink() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 6 && args.length != 7) {
      System.err.println("usage: StatefulFlink BROKERS INPUT TUMBLING_TOPIC SLIDING_TOPIC APP_ID CHECKPOINT_DIR [CHECKPOINT_INTERVAL_MS]");
      System.exit(2);
    }
    String brokers = args[0];
    String appId = args[4];
    Configuration conf = new Configuration();
    conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
    conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
    conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, "file://" + args[5]);
    conf.set(RestOptions.BIND_PORT, "0");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(2, conf);
    env.enableCheckpointing(args.length == 7 ? Long.parseLong(args[6]) : 1000, CheckpointingMode.EXACTLY_ONCE);

    KafkaSource<Event> source = KafkaSource.<Event>builder()
        .setBootstrapServers(brokers)
        .setTopics(args[1])
        .setGroupId(appId)
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setDeserializer(new EventDeserializer())
        .setProperty("isolation.level", "read_committed")
        .build();
    WatermarkStrategy<Event> watermarks = WatermarkStrategy.<Event>forBoundedOutOfOrderness(Duration.ofSeconds(5))
        .withTimestampAssigner((e, recordTs) -> e.ts);
    KeyedStream<Event, String> byService = env.fromSource(source, watermarks, "events").keyBy(e -> e.service);

    byService
        .window(TumblingEventTimeWindows.of(Duration.ofSeconds(10)))
        .aggregate(new CountAgg(), new TumblingOut())
        .sinkTo(sink(brokers, args[2], appId + "-tumbling"));
    byService
        .window(SlidingEventTimeWindows.of(Duration.ofSeconds(30), Duration.ofSeconds(10)))
        .aggregate(new StatsAgg(), new SlidingOut())
        .sinkTo(sink(brokers, args[3], appId + "-sliding"));
    env.execute(appId);
  }

  static KafkaSink<Tuple2<String, String>> sink(String brokers, String topic, String transactionalIdPrefix) {
    return KafkaSink.<Tuple2<String, String>>builder()
        .setBootstrapServers(brokers)
        .setRecordSerializer(new KeyedJson(topic))
        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .setTransactionalIdPrefix(transactionalIdPrefix)
        // Below the broker's 15-minute transaction.max.timeout.ms (Flink's default of 1 h is refused).
        .setProperty("transaction.timeout.ms", "600000")
        .build();
  }

  /** One input event (a Flink POJO: public fields, no-argument constructor). */
  public static final class Event {
    public String service;
    public long ts;
    public long latency;

    public Event() {}
  }

  /** Aggregate of one sliding window (a Flink POJO). */
  public static final class Stats {
    public long count;
    public long sum;
    public long min = Long.MAX_VALUE;
    public long max = Long.MIN_VALUE;

    public Stats() {}
  }

  /** Key = service, event time = the record timestamp, latency from the JSON value. */
  static final class EventDeserializer implements KafkaRecordDeserializationSchema<Event> {
    private transient ObjectMapper json;

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Event> out) throws java.io.IOException {
      if (!STARTED.getAndSet(true)) {
        System.out.println("FIRST_INPUT " + System.currentTimeMillis());
        System.out.flush();
      }
      if (json == null) json = new ObjectMapper();
      Event e = new Event();
      e.service = new String(record.key(), StandardCharsets.UTF_8);
      e.ts = record.timestamp();
      e.latency = json.readTree(record.value()).get("latency").asLong();
      out.collect(e);
    }

    @Override
    public TypeInformation<Event> getProducedType() {
      return TypeInformation.of(Event.class);
    }
  }

  static final class CountAgg implements AggregateFunction<Event, Long, Long> {
    public Long createAccumulator() { return 0L; }
    public Long add(Event e, Long n) { return n + 1; }
    public Long getResult(Long n) { return n; }
    public Long merge(Long a, Long b) { return a + b; }
  }

  static final class StatsAgg implements AggregateFunction<Event, Stats, Stats> {
    public Stats createAccumulator() { return new Stats(); }

    public Stats add(Event e, Stats s) {
      s.count++;
      s.sum += e.latency;
      s.min = Math.min(s.min, e.latency);
      s.max = Math.max(s.max, e.latency);
      return s;
    }

    public Stats getResult(Stats s) { return s; }

    public Stats merge(Stats a, Stats b) {
      a.count += b.count;
      a.sum += b.sum;
      a.min = Math.min(a.min, b.min);
      a.max = Math.max(a.max, b.max);
      return a;
    }
  }

  static final class TumblingOut extends ProcessWindowFunction<Long, Tuple2<String, String>, String, TimeWindow> {
    @Override
    public void process(String service, Context ctx, Iterable<Long> counts, Collector<Tuple2<String, String>> out) {
      if (FLUSH.equals(service)) return;
      long count = counts.iterator().next();
      out.collect(Tuple2.of(service, String.format("{\"service\":\"%s\",\"start\":%d,\"end\":%d,\"count\":%d}",
          service, ctx.window().getStart(), ctx.window().getEnd(), count)));
    }
  }

  static final class SlidingOut extends ProcessWindowFunction<Stats, Tuple2<String, String>, String, TimeWindow> {
    @Override
    public void process(String service, Context ctx, Iterable<Stats> stats, Collector<Tuple2<String, String>> out) {
      if (FLUSH.equals(service)) return;
      Stats s = stats.iterator().next();
      out.collect(Tuple2.of(service, String.format(
          "{\"service\":\"%s\",\"start\":%d,\"end\":%d,\"count\":%d,\"sum\":%d,\"min\":%d,\"max\":%d}",
          service, ctx.window().getStart(), ctx.window().getEnd(), s.count, s.sum, s.min, s.max)));
    }
  }

  /** Key = service, value = the window's JSON. */
  static final class KeyedJson implements KafkaRecordSerializationSchema<Tuple2<String, String>> {
    private final String topic;

    KeyedJson(String topic) {
      this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Tuple2<String, String> r, KafkaSinkContext ctx, Long timestamp) {
      return new ProducerRecord<>(topic, r.f0.getBytes(StandardCharsets.UTF_8), r.f1.getBytes(StandardCharsets.UTF_8));
    }
  }
}
