// Dashboard JSON has no TypeScript enums: Grafana's string enums (ThresholdsMode.Absolute =
// "absolute", FieldColorModeId.PaletteClassic = "palette-classic", ...) arrive as plain strings.
// Relax<T> replaces every string enum by the union of its values and leaves everything else,
// including optional/required keys and excess-property checks, as @grafana/schema declares it.
export type Relax<T> =
  T extends string ? `${T}` :
  T extends number | boolean | null | undefined ? T :
  T extends ReadonlyArray<infer U> ? Array<Relax<U>> :
  T extends object ? { [K in keyof T]: Relax<T[K]> } :
  T;
