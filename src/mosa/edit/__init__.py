"""Motion editing with the text-to-motion generator, no fine-tuning: span regeneration,
continuation (``extend``), ``lead_in``, ``inbetween`` and ``outpaint``; and long takes from a
sequence of prompts (``sequence``), each part a continuation of the take so far.

Every mode lays out an output canvas of kept source frames and frames to generate, then runs
the normal generation loop with one ``ForcedTokens`` strategy on a window of it: the generated
frames plus ``context`` seconds (``DEFAULT_CONTEXT``) of kept frames on either side
(``generator_window``). The canvas outside the window is the source as it is, so sources may be
longer than the generator's maximum length. In the window:

1. the canvas (source features, generated frames filled by interpolation) is normalised and
   encoded by the tokenizer into its K scales of tokens, in the output's own scale layout;
2. at each scale k, token i covers frames ``[i T / n_k, (i + 1) T / n_k)``; a token whose
   frames are all kept is forced to the source's token, the others are sampled with the text
   and classifier-free guidance as usual (coarse tokens span the gaps, so they are always
   sampled: the text decides the overall motion, the source its details);
3. the latent of the generated tokens is decoded with the source's quantized latent pasted
   over fully kept latent positions, so kept frames decode to (nearly) the source's
   reconstruction and only the seams and the generated frames differ;
4. the output is joined by offset blending (``offset_join``): kept frames are the source's
   own features, generated frames the decode plus, at each seam, the difference between the
   kept source frame and the decode there as the generated frames carry it back
   (``seam_reference``), decaying smoothly (``1 - smoothstep``) to
   zero over a window of generated frames. The window grows with the offset so that the
   correction adds little joint speed (``SPEED_BUDGET`` of the source's 95th percentile
   joint speed), from ``blend`` (``--blend``) to ``MAX_WINDOW`` frames, and stays inside the
   generated run when a kept part follows it (the correction then spreads over the whole run
   and both seams match). Joint positions are corrected by rotating bones, so bone lengths
   stay smooth. The 263-d features hold root *velocities*, which are offset too: the root's
   path and speed carry on across a seam, and a kept part after a generated one follows on
   from where the generated part ends (it is re-anchored, not teleported).

    >>> import mosa, mosa.edit as E
    >>> from mosa.motion.io import read_motion
    >>> pipe = mosa.load()
    >>> src = read_motion("walk.bvh").joints                      # (T, 22, 3) at 20 fps
    >>> m = E.edit_span(pipe, src, "a person jumps", 2.0, 3.5, seed=1)
    >>> m.save("walk_jump.bvh")

Frames: a source of T joint frames gives T - 1 feature frames (features are velocities), so
outputs have one frame less than their sources; frame t is at time t / fps. Output lengths are
multiples of the tokenizer's 4-frame unit: the extra (< 4) frames go to the generated part.

The package depends on ``mosa.pipeline`` and ``mosa.sampling``, never the reverse:
``canvas`` (what is kept and what is generated, the generator window and token masks),
``seams`` (offset blending where kept and generated frames meet), ``modes`` (running an
edit and the five modes over one canvas runner) and ``sequence`` (chained continuations).
"""

from mosa.edit.canvas import (
    Canvas,
    Part,
    Segment,
    generator_window,
    latent_mask,
    layout,
    token_masks,
)
from mosa.edit.modes import (
    DEFAULT_CONTEXT,
    EditedMotion,
    Source,
    edit_span,
    extend,
    inbetween,
    lead_in,
    outpaint,
    parse_context,
    run_canvas,
    source_features,
)
from mosa.edit.on_rig import (
    Take,
    edit_on_joints,
    edit_on_rig,
    lock_generated_feet,
    save_edit,
    take_of,
)
from mosa.edit.seams import (
    DEFAULT_BLEND,
    MAX_WINDOW,
    SMOOTHSTEP_SLOPE,
    SPEED_BUDGET,
    Seam,
    find_seams,
    offset_join,
    seam_reference,
    seam_weights,
    source_speed,
)
from mosa.edit.sequences import (
    MIN_CONTEXT,
    SequenceMotion,
    SequencePart,
    check_sequence,
    sequence,
)

__all__ = [
    "DEFAULT_BLEND", "DEFAULT_CONTEXT", "MAX_WINDOW", "MIN_CONTEXT", "SMOOTHSTEP_SLOPE",
    "SPEED_BUDGET", "Canvas", "EditedMotion", "Part", "Seam", "Segment", "SequenceMotion",
    "SequencePart", "Source", "Take", "check_sequence", "edit_on_joints", "edit_on_rig",
    "lock_generated_feet", "save_edit", "take_of",
    "edit_span", "extend", "find_seams", "generator_window", "inbetween", "latent_mask",
    "layout", "lead_in", "offset_join", "outpaint", "parse_context", "run_canvas",
    "seam_reference", "seam_weights", "sequence", "source_features", "source_speed",
    "token_masks",
]  # fmt: skip
