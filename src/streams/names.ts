/** Stream names: what WHIP, the API and folder names accept. */
export const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
