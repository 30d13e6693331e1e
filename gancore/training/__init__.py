"""The method-agnostic GAN trainer: phases, EMA, checkpoints, resume, divergence rollback."""
