"""Looking at stimuli: a live explorer in the browser (:mod:`lit3d.viewer.mei`,
:mod:`lit3d.viewer.mrd`, served by :mod:`lit3d.viewer.server`) and a static atlas of runs
(:mod:`lit3d.viewer.atlas`)."""
