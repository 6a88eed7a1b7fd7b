: A voltage-independent conductance with its own reversal, standing in for Ih in
: lfpsurrogate's test cell: only its density matters for the tests.
NEURON {
    SUFFIX l5likeih
    NONSPECIFIC_CURRENT i
    RANGE gbar, e
}
UNITS { (mA) = (milliamp) (mV) = (millivolt) (S) = (siemens) }
PARAMETER { gbar = 1e-5 (S/cm2) e = -45 (mV) }
ASSIGNED { v (mV) i (mA/cm2) }
BREAKPOINT { i = gbar * (v - e) }
