"""Every tunable of the payment-behaviour fit in one table, each with what it trades off.

The fit reads these names and nothing else; a change here is a change of the model's
assumptions, so each says why it has the value it has.
"""

from __future__ import annotations

# --- What part of the history is used -------------------------------------------------------
FIT_CAP_DAYS = 365
"""Days after due beyond which an invoice's days at risk are not used. Forecast horizons are
at most 180 days; a year keeps the long tail's level identified without fitting on years of
near-zero hazard."""

DATA_SHARE_FOR_ESTIMATE = 0.5
"""Below this share of a parameter's information coming from the data (rather than its prior)
the parameter is reported as a prior, and forecasts that lean on it are warned about."""

# --- Priors (DOMAIN.md's research ranges): (mean, standard deviation) on the logit scale -----
PRIOR_BASELINE = (-4.0, 10.0)
"""The daily hazard per day bin: wide, the data always identify it."""
PRIOR_COVARIATE = (0.0, 2.0)
"""Static covariates (B2C, amount, e-invoice, dispute, fee agreed, the debtor's record)."""
PRIOR_BUMP = ((0.6, 0.3, 0.1), 0.4)
"""A contact's bump by window after delivery (0..2, 3..6, 7..13 days): a reminder is worth a
few points and fades within days."""
PRIOR_LATER_CONTACT = (-0.2, 0.4)
"""Second and later contacts move less than the first."""
PRIOR_FEE = (0.0, 0.4)
"""A reminder fee: no direction assumed."""
PRIOR_NOTICE = (0.4, 0.4)
"""A collection notice moves more than a soft reminder."""
PRIOR_UNCONTACTED = (0.0, 1.0)
"""The age of an invoice no contact has reached yet, against its first 14 days: no
direction assumed; a factor of e either way is plausible."""
PRIOR_CLASS_SHIFT = (-2.0, 10.0)
"""The latent classes' hazard shifts against class 0: wide, so a never-pay class (a shift of
-6 or less) is not held back by its prior."""
PRIOR_CLASS_CONTACT_SD = 0.5
"""Each class's own deviation from the shared contact effects (bump by window, later
contacts, fee, notice), centred on zero: classes may answer contacts differently (a
forgetful debtor is moved more by a reminder than an organised one), but a class with
little data keeps the shared effect. 0.5 on the logit scale lets one class's bump be
several times another's while pulling a thin class's estimate towards the shared one."""
CLASS_CONTACT_EFFECTS = True
"""Whether the fit gives each latent class its own contact effects (shrunk towards the
shared ones). Off, classes differ only in their level (the class shift)."""

# --- EM and the optimiser ------------------------------------------------------------------
EM_MAX_ITERATIONS = 50
"""EM iterations per start. Fits on our worlds converge in 10-20; hitting the cap is reported
as non-convergence."""
EM_TOLERANCE = 1e-6
"""EM stops when the log-likelihood changes by less than this relative amount."""
EM_STARTS = 2
"""Starts per number of classes from the debtors' lateness (one plain, the rest jittered);
class selection adds, for k classes, splits of the (k-1)-class fit's two slowest classes.
The best penalised likelihood wins; every start costs a fit."""
SPLIT_DISTANCE = 3.0
"""A split start puts the new class this far (logit) below the class it splits, and the old
one a third of it above: far enough apart for a never-pay group to separate."""
OPTIMISER_MAX_ITERATIONS = 200
"""Trust-region iterations of one M-step."""
OPTIMISER_GRADIENT_TOLERANCE = 1e-9

HESSIAN_CONDITION_LIMIT = 1e12
"""Above this condition number the Hessian is treated as singular and the covariance comes
from its pseudo-inverse (with a warning): some parameter combination is not identified."""

# --- Choosing the number of latent classes ---------------------------------------------------
MAX_CLASSES = 4
"""Candidates are 1..MAX_CLASSES classes. Four covers prompt, slow, struggling and never-pay
debtors; each candidate costs EM_STARTS fits."""
HOLDOUT_SHARE = 0.3
"""Leave-future-out: the candidates are fitted on the history before the cut (the issue date
below which 70 % of invoices were issued, everything as known then) and scored on the
invoices issued after it, each debtor's future predicted from its own past."""
SELECTION_MAX_INVOICES = 60_000
"""Class selection runs on a sample of whole debtors holding about this many invoices; the
chosen number of classes is then fitted on everything. Larger is slower and steadier."""
SELECTION_RANK_STARTS = 1
"""Lateness starts per candidate in class selection, beside the split starts from the
candidate with one class fewer (which is what finds a small never-pay group)."""
SELECTION_STANDARD_ERRORS = 1.0
"""The fewest classes whose held-out score is within this many standard errors (over
debtors) of the best is chosen: a class must earn its place on data it was not fitted on."""

# --- Covariates ----------------------------------------------------------------------------
AMOUNT_BINS = 8
"""Amount bins are the octiles of the history's own amounts (log scale), whatever the
currency: a USD history spreads over the bins as a SEK one does."""
TENURE_DAYS = 180
"""A debtor whose first invoice in the history is at least this many days older than the
current one counts as established."""
OVERDUE_DAYS = 30
"""An earlier invoice of the same debtor that is unpaid more than this many days after its
due date, on the current invoice's issue date, marks the debtor as in arrears."""
