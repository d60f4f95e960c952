/**
 * CloudWatch Logs fallback: the lines a job printed before it could write to
 * the event log (install errors, a container that died at start) are only in
 * the job's log stream. Best effort: missing permissions or a stream that
 * doesn't exist yet give no lines, never an error on top of the failure.
 */
import { CloudWatchLogsClient, GetLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";

export const BATCH_LOG_GROUP = "/aws/batch/job";

export async function lastLogLines(stream: string | undefined, count = 20, group = BATCH_LOG_GROUP): Promise<string[]> {
  if (!stream) return [];
  const client = new CloudWatchLogsClient({});
  try {
    const r = await client.send(new GetLogEventsCommand({ logGroupName: group, logStreamName: stream, startFromHead: false, limit: count }));
    return (r.events ?? []).flatMap((e) => (e.message ?? "").replace(/\n$/, "").split("\n")).slice(-count);
  } catch {
    return [];
  } finally {
    client.destroy();
  }
}
