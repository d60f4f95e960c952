/** Hover text as editors show it: the signature, then its documentation and tags. */
import { ts } from "../../step/typescript";

export function quickInfoText(info: ts.QuickInfo): string {
  const signature = ts.displayPartsToString(info.displayParts);
  const docs = ts.displayPartsToString(info.documentation);
  const tags = (info.tags ?? []).map((t) => `@${t.name}${t.text ? " " + ts.displayPartsToString(t.text) : ""}`).join("\n");
  return [signature, docs, tags].filter((s) => s.length > 0).join("\n\n");
}
