// The one error kind for files that cannot be read as what they claim to be (datasets,
// checkpoints). The message is complete on its own and names the file and the field; `file` and
// `field` carry the same facts for code that wants them. Readers throw nothing else for bad
// bytes: an internal RangeError or SyntaxError escaping a reader is a bug (tests/ssql/fuzz.test.ts).

export interface FormatErrorWhere {
  /** The file (or upload name) the bytes came from. */
  file?: string;
  /** What inside it was wrong: a tensor name, a header field, a record. */
  field?: string;
}

export class FormatError extends Error {
  readonly file?: string;
  readonly field?: string;

  constructor(message: string, where: FormatErrorWhere = {}) {
    super(message);
    this.name = 'FormatError';
    this.file = where.file;
    this.field = where.field;
  }
}

/** A dataset file (IDX, CIFAR) that is corrupt, truncated or of another kind. */
export class DataFormatError extends FormatError {
  constructor(message: string, where: FormatErrorWhere = {}) {
    super(message, where);
    this.name = 'DataFormatError';
  }
}

/** A checkpoint (safetensors) that is corrupt, truncated, or holds unusable values. */
export class CheckpointFormatError extends FormatError {
  constructor(message: string, where: FormatErrorWhere = {}) {
    super(message, where);
    this.name = 'CheckpointFormatError';
  }
}
