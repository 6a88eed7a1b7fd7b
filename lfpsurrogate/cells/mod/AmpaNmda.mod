COMMENT
Excitatory synapse of lfpsurrogate: AMPA + NMDA conductances, each a difference of two
exponentials normalised to a peak of 1, driven by the same event.

NMDA voltage dependence: Mg2+ block after Jahr & Stevens (1990) J Neurosci 10:3178,
  B(v) = 1 / (1 + exp(-0.062 v) [Mg2+]o / 3.57 mM).
Default kinetics are the published values used by Beniaguev, Segev & London (2021),
Neuron 109:2727 (after Hay & Segev 2015): AMPA rise 0.3 ms / decay 3 ms,
NMDA rise 2 ms / decay 70 ms, reversal 0 mV, [Mg2+]o = 1 mM.
The NetCon weight is the peak AMPA conductance (uS); the peak NMDA conductance is
nmda_ratio * weight.
Written for lfpsurrogate (GPL-3.0-or-later).
ENDCOMMENT

NEURON {
    POINT_PROCESS AmpaNmda
    RANGE tau_r_ampa, tau_d_ampa, tau_r_nmda, tau_d_nmda, e, mg, nmda_ratio
    RANGE i_ampa, i_nmda, g_ampa, g_nmda
    NONSPECIFIC_CURRENT i
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}

PARAMETER {
    tau_r_ampa = 0.3 (ms)
    tau_d_ampa = 3.0 (ms)
    tau_r_nmda = 2.0 (ms)
    tau_d_nmda = 70.0 (ms)
    e = 0 (mV)
    mg = 1 (mM)
    nmda_ratio = 1 (1)
}

ASSIGNED {
    v (mV)
    i (nA)
    i_ampa (nA)
    i_nmda (nA)
    g_ampa (uS)
    g_nmda (uS)
    norm_ampa (1)
    norm_nmda (1)
}

STATE {
    rise_ampa (uS)
    decay_ampa (uS)
    rise_nmda (uS)
    decay_nmda (uS)
}

INITIAL {
    rise_ampa = 0
    decay_ampa = 0
    rise_nmda = 0
    decay_nmda = 0
    norm_ampa = peak_norm(tau_r_ampa, tau_d_ampa)
    norm_nmda = peak_norm(tau_r_nmda, tau_d_nmda)
}

BREAKPOINT {
    SOLVE kinetics METHOD cnexp
    g_ampa = decay_ampa - rise_ampa
    g_nmda = (decay_nmda - rise_nmda) * mg_block(v)
    i_ampa = g_ampa * (v - e)
    i_nmda = g_nmda * (v - e)
    i = i_ampa + i_nmda
}

DERIVATIVE kinetics {
    rise_ampa' = -rise_ampa / tau_r_ampa
    decay_ampa' = -decay_ampa / tau_d_ampa
    rise_nmda' = -rise_nmda / tau_r_nmda
    decay_nmda' = -decay_nmda / tau_d_nmda
}

FUNCTION peak_norm(tau_r (ms), tau_d (ms)) (1) {
    : 1 / peak of exp(-t/tau_d) - exp(-t/tau_r)
    LOCAL t_peak
    t_peak = tau_r * tau_d / (tau_d - tau_r) * log(tau_d / tau_r)
    peak_norm = 1 / (exp(-t_peak / tau_d) - exp(-t_peak / tau_r))
}

FUNCTION mg_block(v (mV)) (1) {
    mg_block = 1 / (1 + exp(-0.062 (/mV) * v) * (mg / 3.57 (mM)))
}

NET_RECEIVE(weight (uS)) {
    rise_ampa = rise_ampa + weight * norm_ampa
    decay_ampa = decay_ampa + weight * norm_ampa
    rise_nmda = rise_nmda + weight * nmda_ratio * norm_nmda
    decay_nmda = decay_nmda + weight * nmda_ratio * norm_nmda
}
