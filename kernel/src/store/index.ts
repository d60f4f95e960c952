/** The datastore's public surface (kernel, worker, CLI, client library). */
export * from "./errors";
export type { StorageBackend, ChunkSource, ObjectReader, ObjectStat, PutOptions, PutResult, TempEntry } from "./backend";
export { FsBackend } from "./fs-backend";
export { BlobStore, blobKey, sha256Of } from "./blobs";
export {
  serializeValue,
  serializeOrThrow,
  serializeSourceText,
  deserialize,
  describeType,
  findUnserializable,
  BufferSource,
  DEFAULT_OOB_THRESHOLD,
} from "./serialize";
export type { Serialized, Decoded, ValueHeader, ValueKind } from "./serialize";
export { toJsonForm } from "./json-form";
export type { Json, JsonForm } from "./json-form";
export { ArtifactStore, parseArtifactSpec, encodeName } from "./artifacts";
export type { ArtifactRef, VersionRecord, VersionFilter } from "./artifacts";
export { NotebookRenames, inNotebook } from "./notebooks";
export type { NotebookAlias, NotebookFilter, RenameRecord } from "./notebooks";
export { ExecutionStore, ExecutionAbandonedError, newExecutionId, summarize } from "./executions";
export type { ExecutionRecord, ExecutionSummary, ExecutionFilter, ExecutionStatus, OutputRef, LogRef } from "./executions";
export { Datastore, prepareOutputs } from "./datastore";
export type { ExecutionInput, LoadedArtifact, PreparedOutput } from "./datastore";
export { resolveDatastore, describeLocation, ENV_VAR, DEFAULT_DIR } from "./location";
export type { DatastoreLocation } from "./location";
export { fsck, DEFAULT_GRACE_MS } from "./fsck";
export type { FsckResult, FsckProblem, FsckLeftover } from "./fsck";
export { environmentInfo } from "./env";
export { thisWriter, writerState } from "./writer";
export type { WriterIdentity, WriterState } from "./writer";
