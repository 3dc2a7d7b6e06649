"""Evaluation: Table 1's metrics (``metrics``), the diagnostic sets and reconstruction numbers
(``diagnostics``), the ventricle measurement (``ventricles``), the conditioning and extrapolation numbers
(``conditioning``), the claims and their verdicts (``claims``) and the memorisation audit (``privacy``).
Nothing here imports training."""
