import type { StorageBackend } from "./backend";
import { FsBackend } from "./fs-backend";
import type { DatastoreLocation } from "./location";

/** The storage backend for a resolved datastore location. */
export function backendFor(loc: DatastoreLocation): StorageBackend {
  if (loc.kind === "s3") {
    // Loaded lazily: the AWS SDK is only needed by S3 users.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { S3Backend } = require("./s3-backend") as typeof import("./s3-backend");
    return new S3Backend({ bucket: loc.bucket, prefix: loc.prefix });
  }
  return new FsBackend(loc.path);
}
