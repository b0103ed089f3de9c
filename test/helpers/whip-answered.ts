/** What every WHIP test publisher reports of its POST, whichever client it is. */
export interface WhipAnswered {
  status: number;
  offer: string;
  answer: string;
  /** Absolute URL of the WHIP session. */
  location?: string;
  errorText?: string;
  /** performance.now() when the WHIP answer was read. */
  answeredAt: number;
}
