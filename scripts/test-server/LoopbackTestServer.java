// Temporal's time-skipping test server on 127.0.0.1 only: the jar's own main class
// (io.temporal.testserver.TestServer) listens on every interface. Same arguments as that one:
// <port> [--enable-time-skipping]; without the flag, time skipping starts locked, and the SDK's
// TestWorkflowEnvironment unlocks it while a test waits for a workflow result.
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.temporal.internal.testservice.GRPCServerHelper;
import io.temporal.internal.testservice.TestServicesStarter;
import java.net.InetSocketAddress;

public final class LoopbackTestServer {
  public static void main(String[] args) throws Exception {
    if (args.length < 1 || args.length > 2) {
      System.err.println("usage: LoopbackTestServer <port> [--enable-time-skipping]");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    boolean skipping = args.length == 2 && args[1].equals("--enable-time-skipping");
    TestServicesStarter services = new TestServicesStarter(!skipping, 0);
    NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port));
    GRPCServerHelper.registerServicesAndHealthChecks(services.getServices(), builder);
    builder.build().start().awaitTermination();
  }
}
