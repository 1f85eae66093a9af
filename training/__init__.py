"""Training stage: data loaders, Bradley-Terry and classifier reward models, evaluation."""
