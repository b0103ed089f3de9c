// Stream names: what WHIP, the API, players' URLs and folder names accept. Every other
// pattern that contains a stream name is built from NAME_PATTERN.

/** The pattern of a stream name, without anchors (for building file-name patterns). */
export const NAME_PATTERN = '[A-Za-z0-9_-]{1,64}';

export const STREAM_NAME = new RegExp(`^${NAME_PATTERN}$`);

/** What a refused name is told. */
export const STREAM_NAME_RULE = 'stream name must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"';
