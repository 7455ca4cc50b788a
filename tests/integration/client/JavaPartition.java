// The partition Kafka's Java producer picks for each key (its built-in partitioner), one
// "key partition" line per key. Run as a single-file program with kafka-clients on the
// class path: java -cp kafka-clients.jar JavaPartition.java <partitions> <key>...
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public class JavaPartition {
    public static void main(String[] args) {
        int partitions = Integer.parseInt(args[0]);
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            System.out.println(args[i] + " " + BuiltInPartitioner.partitionForKey(key, partitions)
                               + " " + Utils.murmur2(key));
        }
    }
}
