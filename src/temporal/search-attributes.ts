/**
 * Search attributes the batch plane sets on every job, so operators can filter jobs in the
 * Temporal Web UI (for example `HuntJobKind = "backfill" AND HuntId = "h1"`).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const HUNT_JOB_KIND = defineSearchAttributeKey('HuntJobKind', SearchAttributeType.KEYWORD);
export const HUNT_ID = defineSearchAttributeKey('HuntId', SearchAttributeType.KEYWORD);

/** Name and type pairs, as `temporal server start-dev --search-attribute` takes them. */
export const searchAttributeFlags = ['HuntJobKind=Keyword', 'HuntId=Keyword'];
