"""The default built-in task: arithmetic written by a noisy corpus, so the tiny policy samples a long tail.

    prompt "12+7="   answer "19"   reward 1 if the completion is exactly "19"
    teacher completions: "19", "18 and the", " about 19 people of", "21 now", " with 17", ...

Why (DESIGN.md, "The token regime"): ratio clips and divergence trust regions differ only on rare
tokens, and the character task has almost none (median μ 0.97, 4% of sampled tokens below 0.1),
while SmolLM2-135M samples 34% below 0.1 and 15% below 0.01. A first sketch put the tail in the
answer itself (numbers as single tokens of a 200-token vocabulary): the profile was right but the
tiny model never learned the sums, so RL had nothing to sharpen. Here what the policy must know stays
learnable (the answer is digit characters, the same sums and near-miss teacher as ``arithmetic``) and
the tail sits where a real LLM has it, in the many plausible continuations a noisy pretraining corpus
teaches: a vocabulary of common English words as whole-word tokens (like BPE's " the"), drawn by a
Zipf law, which open the completion instead of the number with probability ``distractor_rate`` (a
hedge such as " about 19") and follow the number with probability ``chatter_rate`` per word (" and the ...").

The reward (``concise``, default) wants the bare number, as a "reply with just the number" reward wants
of a chat model: every sampled word costs it, so RL has a real signal on each rare token (drop it) as
well as on the digits. With ``concise=False`` the reward reads the number the completion opens with and
ignores the chatter after it; that regime did not learn: under the quickstart's first RL settings (lr
3e-4, 4 updates per batch, 8 tokens) held-out accuracy fell from 16.6% to 8.1% (grpo), 0.0% (dppo_tv),
12.5% (drpo) in 400 steps, seed 0: the chatter put pure-noise gradients on many rare tokens. The concise
reward at those settings rose only from 8.7% to 9.4% (grpo, 200 steps, seed 0; greedy accuracy fell
from 34% to 16%); at lr 1e-4, 2 updates per batch and 5 tokens it rose to 23.7%.

Measured with sweeps/quickstart.yaml (these defaults; bf16 rollout, lr 1e-4, 2 updates per batch, 5 tokens,
200 steps; 3 seeds × grpo / dppo_tv / drpo) on 2 cores shared with other jobs (load average 4.5–6.3):
over the first 50 steps 30.7% of sampled tokens had μ < 0.1 and 17.8% μ < 0.01 (every run 30–32% and
17–19%; SmolLM2-135M: 34%, 15%; the character task: 4.3%, 0.5%), falling to about 8% and 4.5% in the
last tenth as RL drops the words. Held-out sampled accuracy rose from 7.0% (base policy, mean of the 3
seeds' step-0 evaluations) to 30.7% (grpo), 29.1% (drpo) and 26.4% (dppo_tv); each run took 49–86 s,
the whole sweep and report 4 min 29 s (4 min 54 s of CPU). With seeds 0–4 (seeds 0–2 identical): 6.4% →
28.8% (grpo), 28.9% (drpo), 26.9% (dppo_tv), 8 min 45 s of CPU, 16 min at load average 10.
The warm start needs learning rate 1e-3: at the character task's 3e-3 the 513-token softmax drowned the
sums (sampled accuracy 5%, with or without the noise).

Mismatch regimes (issue 16; README "Mismatch regimes, measured"): the quickstart's settings with one source of
μ ≠ π changed, seed 0, 200 steps. Mean |π − μ|, mismatch/kl; the fraction of tokens each trust region touched
(grpo ε 0.2 / dppo_tv δ 0.15 / drpo δ 0.15); grpo's held-out accuracy from 8.8%:

    bf16 sampler (quickstart)      0.0043  0.0001    0.5% / 0.01% /  5%   29.1%
    fp8 / int8 / int4 sampler      0.0083 / 0.0037 / 0.0123; int4: 2.8% / 0.23% / 17%   27.8 / 27.2 / 31.9%
    lag 2 / 4 / 8                  0.0116 / 0.0176 / 0.0281; lag 8: 5.8% / 2.1% / 40%, kl 0.029   30.9 / 31.6 / 26.6%
    1 / 4 / 8 updates per batch    0.0020 / 0.0110 / 0.0205; 8: 6.9% / 2.7% / 23%, kl 0.0006    30.9 / 27.2 / 27.8%
    top_p 0.9 / 0.7 / 0.5 (processed μ)  0.052 / 0.127 / 0.205; 0.7: 21% / 13% / 80%, kl 0.21   26.2 / 26.6 / 23.1%
    int4 + lag 4 + 4 updates, lr 2e-4     0.042  0.049   8.7% / 3.8% / 29%   17.2%

DPPO's δ = 0.15 binds (≥ 2% of tokens) with 8 updates per batch (sweeps/stress.yaml), lag 8 or top_p ≤ 0.7,
while grpo still gains 14–19 points; the quantised samplers alone stay under it. Plain pg collapsed in 5 of 5
seeds at lag 8, 4 updates per batch, lr 1e-3 (sweeps/collapse.yaml), and grpo did too.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re

from .arithmetic import ArithmeticTask
from .base import register_task

# Common English words, most frequent first: the Zipf rank is the position.
LEXICON = tuple(f" {w}" for w in """
the of and to a in is it you that he was for on are with as his they be at one have this from or had by
not word but what some we can out other were all there when up use your how said an each she which do
their time if will way about many then them write would like so these her long make thing see him two
has look more day could go come did number sound no most people my over know water than call first who
may down side been now find any new work part take get place made live where after back little only
round man year came show every good me give our under name very through just form sentence great think
say help low line differ turn cause much mean before move right boy old too same tell does set three
want air well also play small end put home read hand port large spell add even land here must big high
such follow act why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found answer school grow
study still learn plant cover food sun four between state keep eye never last let thought city tree
cross farm hard start might story saw far sea draw left late run while press close night real life few
north open seem together next white children begin got walk example ease paper group always music those
both mark often letter until mile river car feet care second book carry took science eat room friend
began idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl
usual young ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half rock order
fire south problem piece told knew pass since top whole king space heard best hour better true during
hundred five remember step early hold west ground interest reach fast verb sing listen six table travel
less morning ten simple several vowel toward war lay against pattern slow center love person money serve
appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry
dark machine note wait plan figure star box noun field rest correct able pound done beauty drive stood
contain front teach week final gave green oh quick develop ocean warm free minute strong special mind
behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object
decide surface deep moon island foot system busy test record boat common gold possible plane stead dry
wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant
fill east paint language among
""".split())


@register_task("noisy_arithmetic")
class NoisyArithmeticTask(ArithmeticTask):
    name = "noisy_arithmetic"
    alphabet = ArithmeticTask.alphabet + " "
    words = LEXICON
    # At the character task's 3e-3 the 513-token softmax drowned the sums (sampled accuracy 5%; 18% at 1e-3).
    warm_start = {"learning_rate": 1e-3}

    def __init__(self, max_operand: int = 19, eval_fraction: float = 0.2, teacher_accuracy: float = 0.4,
                 distractor_rate: float = 0.2, chatter_rate: float = 0.6, zipf: float = 1.0, concise: bool = True):
        super().__init__(max_operand, eval_fraction, teacher_accuracy)
        for field, rate in (("distractor_rate", distractor_rate), ("chatter_rate", chatter_rate)):
            if not 0 <= rate < 1:
                raise ValueError(f"{field} must be in [0, 1) (got {rate})")
        if zipf <= 0:
            raise ValueError(f"zipf must be positive (got {zipf})")
        self.distractor_rate, self.chatter_rate, self.zipf, self.concise = distractor_rate, chatter_rate, zipf, concise
        self._cumulative = list(itertools.accumulate(1 / rank ** zipf for rank in range(1, len(LEXICON) + 1)))

    def score(self, completion: str, answer: str) -> float:
        if self.concise:  # only the bare number: every sampled word costs the reward
            return float(completion == answer)
        # The number the completion opens with; words after it are free, words before it are wrong.
        number = re.match(r"\d+", completion)
        return float(number is not None and number.group() == answer)

    def reachable(self, text: str, answer: str) -> bool | None:
        """The concise reward accepts the answer alone, so a prefix of it can still be rewarded; the opening-number
        reward (``concise=False``) accepts any chatter after the number and is not enumerated."""
        return answer.startswith(text) if self.concise else None

    def teacher(self, rng: random.Random) -> tuple[str, str]:
        prompt, number = super().teacher(rng)
        opening = f"{self._word(rng)} " if rng.random() < self.distractor_rate else ""
        chatter = ""
        while rng.random() < self.chatter_rate:
            chatter += self._word(rng)
        return prompt, opening + number + chatter

    def _word(self, rng: random.Random) -> str:
        """A word of the lexicon with probability ∝ 1 / rank^zipf."""
        return LEXICON[bisect.bisect(self._cumulative, rng.random() * self._cumulative[-1])]
