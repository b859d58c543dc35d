// Page texts of the association's own life (governance/): membership, dues, votes, the decision register. French
// first, in the words of a French association ("adhésion", "cotisation", "assemblée générale", "procuration").
export const govFr = {
  'home.members': 'Réservé aux membres de l’association',
  'err.CATTERY_ERR_STATUTES': 'Les statuts ne le permettent pas.',
  'err.CATTERY_ERR_VOTE': 'Ce vote n’est pas possible.',
};

export const govEn: Record<keyof typeof govFr, string> = {
  'home.members': 'For members of the association only',
  'err.CATTERY_ERR_STATUTES': 'The statutes do not allow this.',
  'err.CATTERY_ERR_VOTE': 'This vote is not possible.',
};
